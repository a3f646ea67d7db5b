"""Hostile HDF5 and MATLAB files (built by tests/hostile_hdf5.py) through the CLI in a subprocess with a
4 GiB address-space limit and a timeout: each ends in exit 2 with one line naming what was refused, never
a signal, within its time, its peak memory bounded, and `convert` leaves its destination folder empty."""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

import hostile_hdf5 as hostile
import peak

pytestmark = pytest.mark.slow     # run by .ci/run after the README's test command

ROOT = Path(__file__).resolve().parents[2]
ADDRESS_SPACE = 4 << 30
TIMEOUT = 30.0
MiB = 1 << 20


def _limits():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def run(*args, timeout: float = TIMEOUT):
    """(exit code, stderr, seconds, peak RSS in bytes: tests/peak.py) of `python -m rnnconvert ARGS`; a signal is a
    negative exit code, a timeout kills the process (exit -9)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, PYTHONPATH=str(ROOT), KERAS_BACKEND="torch", RNNCONVERT_TEST_PEAK=f"{d}/peak")
        t0 = time.monotonic()
        p = subprocess.Popen(peak.command(args), stdout=out, stderr=err, preexec_fn=_limits, env=env, cwd=ROOT)
        timer = threading.Timer(timeout, p.kill)
        timer.start()
        _, status, _ = os.wait4(p.pid, 0)
        timer.cancel()
        p.returncode = code = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return code, err.read().decode(), time.monotonic() - t0, peak.read(f"{d}/peak") or 0


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Builds a hostile file once per module: made(builder, *args) -> path."""
    d = tmp_path_factory.mktemp("hostile_hdf5")
    cache = {}

    def make(builder, *args):
        key = (builder.__name__, args)
        if key not in cache:
            sub = d / f"{len(cache)}"
            sub.mkdir()
            cache[key] = builder(sub, *args)
        return cache[key]
    return make


def refused(path, message, *, exact=True, command="inspect", seconds=TIMEOUT, memory=None, tmp=None):
    """Run `command` on `path`: exit 2, one line `rnnconvert: error: PATH: MESSAGE` (or holding MESSAGE)."""
    if command == "inspect":
        code, err, took, peak = run("inspect", path)
    else:                                   # convert into an empty folder, which must stay empty
        out = tmp / "out"
        out.mkdir()
        code, err, took, peak = run(path, out / "model.onnx")
        assert list(out.iterdir()) == []
    assert code == 2, (code, err)
    assert err.count("\n") == 1 and err.startswith(f"rnnconvert: error: {path}: "), err
    if exact:
        assert err == f"rnnconvert: error: {path}: {message}\n"
    else:
        assert message in err, err
    assert took < seconds, took
    if memory is not None:
        assert peak < memory, f"peak RSS {peak / MiB:.0f} MiB"
    return err


# ------------------------------------------------------------------------ one budget per HDF5 file

SIX = "its datasets declare 6.0 GiB in all (the largest, '{}', 1.0 GiB) and store 1.0 MiB, more than a"


@pytest.mark.parametrize("builder, what, largest", [
    (hostile.h5_six_gib, "Keras HDF5 file", "model_weights/lstm/lstm/lstm_cell/w5:0"),
    (hostile.keras_six_gib, "model.weights.h5 in the .keras archive", "layers/lstm/cell/vars/5"),
    (hostile.weights_only_six_gib, "Keras weights file", "layers/lstm/cell/vars/5"),
])
@pytest.mark.parametrize("command", ["inspect", "convert"])
def test_six_unwritten_gigabytes_are_refused_before_a_byte_is_read(made, tmp_path, builder, what, largest,
                                                                   command):
    path = made(builder)
    assert path.stat().st_size < 1.1 * MiB
    refused(path, f"{what} refused: " + SIX.format(largest), exact=False, command=command, seconds=15,
            memory=512 * MiB, tmp=tmp_path)


def test_many_small_unwritten_datasets_count_together(made):
    """3,000 datasets of 1 MiB each, every one under the slack a small dataset has: 2.9 GiB together."""
    refused(made(hostile.h5_many_small), "Keras HDF5 file refused: its datasets declare 2.9 GiB in all (the "
            "largest, 'model_weights/lstm/lstm/lstm_cell/w9:0', 1.0 MiB) and store", exact=False, seconds=20,
            memory=512 * MiB)


def test_one_unwritten_gigabyte_beside_real_data_is_refused(made):
    refused(made(hostile.h5_unwritten_gib), "Keras HDF5 file refused: 'model_weights/lstm/lstm/lstm_cell/kernel:0' "
            "declares 1.0 GiB ([16384, 16384] float32) but stores 0 bytes; rnnconvert reads only data stored "
            "inside the file itself", seconds=15, memory=512 * MiB)


def test_a_dataset_listed_six_times_is_read_within_the_files_budget(made):
    """One 512 MiB dataset of zeros (0.5 MiB compressed) in weight_names six times: the first read fits the
    file's budget (1100 times its size), the second does not; what the first read took is dropped with the
    refusal, so the per-layer fallback that reads the file again peaks at one budget, not two."""
    path = made(hostile.h5_listed_six_times)
    refused(path, "Keras HDF5 file refused: reading '/model_weights/lstm/lstm/lstm_cell/kernel:0' (512.0 MiB) "
            "takes the bytes read from it past", exact=False, memory=800 * MiB)


@pytest.mark.parametrize("shape", [(1 << 62, 0), (1 << 40, 1)])
def test_absurd_hdf5_shapes_are_refused(made, shape):
    path = made(hostile.h5_absurd_shape, shape)
    refused(path, f"Keras HDF5 file refused: 'model_weights/lstm/lstm/lstm_cell/kernel:0' has shape "
            f"{list(shape)}, an axis longer than 2147483648 (no weight has one); rnnconvert reads only data "
            "stored inside the file itself")


# ------------------------------------------------------------------------------ odd datatypes

KIND_TEXT = {"compound": "compound values ([('a', '<f4'), ('b', '<i4')])", "opaque": "opaque values (|V4)",
             "string": "string values (|S3)", "vlen string": "string values (object)",
             "vlen": "variable-length values (object)", "reference": "reference values (object)",
             "enum": "enum values (int8)", "bitfield": "bitfield values (uint32)",
             "array": "array values (('<f4', (2,)))"}
EXPECTED = "expected numbers (an integer or floating-point array)"


@pytest.mark.parametrize("kind", hostile.ODD_KINDS)
def test_odd_dtype_in_place_of_a_keras_h5_kernel(made, kind):
    refused(made(hostile.h5_odd_kernel, kind), f"layer 'lstm': dataset '/{hostile.KERNEL}' holds "
            f"{KIND_TEXT[kind]}, {EXPECTED}")


@pytest.mark.parametrize("kind", hostile.ODD_KINDS)
def test_odd_dtype_in_place_of_a_keras_zip_kernel(made, kind):
    refused(made(hostile.keras_odd_kernel, kind), f"dataset '/{hostile.KERAS_KERNEL}' holds {KIND_TEXT[kind]}, "
            f"{EXPECTED}")


@pytest.mark.parametrize("kind", [k for k in hostile.ODD_KINDS if k != "reference"])
def test_odd_dtype_in_place_of_matlab_v73_input_weights(made, kind):
    refused(made(hostile.mat73_odd_weights, kind), f"dataset '/#refs#/r1/InputWeights' holds {KIND_TEXT[kind]}, "
            f"{EXPECTED}")


def test_reference_in_place_of_matlab_v73_input_weights_is_a_cell_that_holds_itself(made):
    """The reference points at the struct holding it: read as a cell, a cycle."""
    refused(made(hostile.mat73_odd_weights, "reference"), "variable 'layers': '/#refs#/r1' contains itself (its "
            "cell references form a cycle, which no MAT-file written by MATLAB has)")


# ----------------------------------------------------------------------- MATLAB v7.3 references

class TooSlow(BaseException):
    """Raised by the alarm: a BaseException, so no reader's `except Exception` swallows it."""


def _too_slow(signum, frame):
    raise TooSlow("mcos.load took more than 10 s")


def test_v73_reference_dag_is_read_once_per_object(made):
    """2**24 paths to one leaf: each cell is read once, so the file reads at once (the old reader's load was
    still running at the 10 s alarm, its inspect at 20 s) and the shared cells come back shared."""
    from rnnconvert.formats.matlab import mcos
    path = made(hostile.mat73_dag)
    old = signal.signal(signal.SIGALRM, _too_slow)
    signal.setitimer(signal.ITIMER_REAL, 10)
    try:
        net = mcos.load(str(path))["net"]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    depth = 0
    while isinstance(net, list):
        assert len(net) == 2 and net[0] is net[1]
        net, depth = net[0], depth + 1
    assert depth == 25 and net.tolist() == [[1.0]]
    refused(path, "no MATLAB network or layer array in the file (variables: net); for plain matrices give a "
            "mapping file (--mapping map.yaml; schemas/matlab.md)", seconds=15)


def test_v73_reference_cycle_is_refused(made, tmp_path):
    refused(made(hostile.mat73_cycle), "variable 'net': '/#refs#/c0' contains itself (its cell references form "
            "a cycle, which no MAT-file written by MATLAB has)", command="convert", tmp=tmp_path)


def test_v73_cells_nested_5000_deep_are_refused_at_64(made):
    refused(made(hostile.mat73_chain), "variable 'net': cells or structs nested more than 64 deep (at "
            "'/#refs#/c4936'); no network is nested that deep", seconds=20)


@pytest.mark.parametrize("builder, what, top", [(hostile.mat73_deep_groups, "MATLAB v7.3 file", "net/a/a"),
                                               (hostile.h5_deep_groups, "Keras HDF5 file", "model_weights/a/a")])
def test_hdf5_groups_nested_10000_deep_are_refused_at_64(made, builder, what, top):
    """HDF5's walk names each object by its whole path: 10,000 levels made the old check quadratic (past 30 s)."""
    refused(made(builder), f"{what} refused: groups nested more than 64 deep (under '{top}/...'), deeper than any "
            "model; rnnconvert reads only data stored inside the file itself", seconds=15)


def test_v73_cell_of_a_million_references_is_refused_before_they_are_followed(made):
    """1.2 million references in 21 KiB (the old reader followed each one: past 60 s)."""
    refused(made(hostile.mat73_wide_cell), "variable 'net': cells and struct arrays hold more than 131072 "
            "elements together (at '/net'); no network has as many", seconds=10)


# -------------------------------------------------------------------------------- MATLAB v5

DEEP = "MAT-file refused: variable 'net' nests cells or structs more than 64 deep; no network is nested that deep"


@pytest.mark.parametrize("builder", [hostile.v5_nested_cells, hostile.v5_nested_structs])
@pytest.mark.parametrize("command", ["inspect", "convert"])
def test_v5_nested_10000_deep_is_refused_without_a_crash(made, tmp_path, builder, command):
    """scipy's reader recursed in C and the process died by SIGSEGV (exit -11) after the error line."""
    refused(made(builder), DEEP, command=command, tmp=tmp_path)


def test_v5_compressed_bomb_is_refused_while_inflating(made, tmp_path):
    """3 GiB of zeros in a 3 MiB miCOMPRESSED element: inflated piecewise up to 100 times the file."""
    path = made(hostile.v5_compressed_bomb)
    assert path.stat().st_size < 4 * MiB
    refused(path, "MAT-file refused: variable 'net' inflates past 299.6 MiB, over 100 times the file's 3.0 MiB "
            "(a decompression bomb)", command="convert", tmp=tmp_path, memory=512 * MiB)


@pytest.mark.parametrize("command", ["inspect", "convert"])
def test_v5_arrays_without_their_data_are_refused_without_a_crash(made, tmp_path, command):
    refused(made(hostile.v5_arrays_without_data), "MAT-file refused: variable 'net' is damaged: a numeric or char "
            "array has no data element", command=command, tmp=tmp_path)


def test_v5_cell_of_200000_arrays_is_refused(made):
    refused(made(hostile.v5_wide_cell), "MAT-file refused: variable 'net' holds more than 131072 arrays in cells "
            "and structs (the file's arrays together); no network has as many", seconds=15)


@pytest.mark.parametrize("cls, dims, message", [
    ("cell", (-1, 1), "has dimensions [-1, 1]: a size cannot be negative"),
    ("double", (-5, 2), "has dimensions [-5, 2]: a size cannot be negative"),
    ("cell", ((1 << 31) - 1, (1 << 31) - 1),
     "declares a cell of [2147483647, 2147483647] (4611686014132420609 elements) in 80 bytes"),
    ("double", ((1 << 31) - 1, 1 << 10),
     "declares an array of [2147483647, 1024] (2199023254528 elements) in 32 bytes"),
])
def test_v5_absurd_dimensions_are_refused(made, cls, dims, message):
    refused(made(hostile.v5_dims, cls, dims), f"MAT-file refused: variable 'net' {message}")


@pytest.mark.parametrize("attribute", ["keras_version", "model_config"])
def test_a_string_attribute_declaring_more_than_the_file_is_refused_before_it_is_read(made, attribute):
    """libhdf5 takes the length a variable-length descriptor declares before it reads the string: a length
    past the file's size is refused from the object header's own bytes, within a small memory."""
    refused(made(hostile.h5_vlen_length_lie, attribute), f"Keras HDF5 file is damaged: attribute '{attribute}' "
            "declares a variable-length value of 4294967295 bytes, more than the whole file holds (23688 bytes)",
            memory=512 * MiB)


def test_a_matlab_field_name_declaring_more_than_the_file_is_refused_before_it_is_read(made):
    """The same in a v7.3 MAT-file, whose 512-byte user block every address counts past."""
    path = made(hostile.mat73_fields_length_lie)
    refused(path, "MATLAB v7.3 file is damaged: attribute 'MATLAB_fields' declares a variable-length value of "
            f"2147483647 bytes, more than the whole file holds ({path.stat().st_size} bytes)", memory=512 * MiB)
