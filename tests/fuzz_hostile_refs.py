"""Hostile files that refer to the same thing many times (tests/fuzz_hostile.py's `dag` and `alias`
classes): MATLAB v7.3 cells whose #refs# form a DAG (fan**levels paths) or a cycle; ONNX weights made
from a constant reused many times (a Concat doubling chain, a fan-out of Identity nodes); YAML anchors
expanded fan**depth times (billion laughs) in plans, --arch and --mapping files; safetensors entries
sharing one byte range; .pt tensors that are stride-0 or shared-storage views.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from fuzz_hostile_files import ONNX_SEED, TORCH_DIR, _case, _v73_file, _with_yaml_seeds
from fuzz_inputs import _read_arch, _read_mapping


# ------------------------------------------------------------------------------------ DAG references

def _v73_refs(f, levels: int, fan: int, cycle: bool):
    import h5py
    refs = f.create_group("#refs#")
    leaf = refs.create_dataset("leaf", data=np.ones((1, 1)))
    leaf.attrs["MATLAB_class"] = np.bytes_(b"double")
    cells = [refs.create_dataset(f"c{k}", shape=(fan, 1), dtype=h5py.ref_dtype) for k in range(levels)]
    for k, c in enumerate(cells):
        c.attrs["MATLAB_class"] = np.bytes_(b"cell")
        nxt = cells[(k + 1) % levels] if (k + 1 < levels or cycle) else leaf
        c[...] = np.array([[nxt.ref]] * fan, dtype=h5py.ref_dtype)
    top = f.create_dataset("net", shape=(1, 1), dtype=h5py.ref_dtype)
    top.attrs["MATLAB_class"] = np.bytes_(b"cell")
    top[...] = np.array([[cells[0].ref]], dtype=h5py.ref_dtype)


def _onnx_dag(d: Path, levels: int, fanout: int) -> Path:
    """The seed's LSTM W made of constants reused many times: a Concat doubling chain of `levels`
    (2**levels copies) sliced back to W, or `fanout` Identity nodes over W joined by Max."""
    import onnx
    from onnx import helper
    m = onnx.load(str(ONNX_SEED))
    g = m.graph
    lstm = next(n for n in g.node if n.op_type == "LSTM")
    w = lstm.input[1]
    new, cur = [], w
    if levels:
        for k in range(levels):
            new.append(helper.make_node("Concat", [cur, cur], [f"dag{k}"], axis=1))
            cur = f"dag{k}"
        rows = next(t.dims[1] for t in g.initializer if t.name == w)
        for name, v in (("s0", 0), ("s1", rows), ("ax", 1)):
            g.initializer.append(helper.make_tensor(name, onnx.TensorProto.INT64, [1], [v]))
        new.append(helper.make_node("Slice", [cur, "s0", "s1", "ax"], ["dagW"]))
    else:
        for k in range(fanout):
            new.append(helper.make_node("Identity", [w], [f"fan{k}"]))
        new.append(helper.make_node("Max", [f"fan{k}" for k in range(fanout)], ["dagW"]))
    lstm.input[1] = "dagW"
    at = list(g.node).index(lstm)
    for k, node in enumerate(new):
        g.node.insert(at + k, node)
    (d / "model.onnx").write_bytes(m.SerializeToString())
    return d / "model.onnx"


def dag_gen(rng, i, seeds):
    kind = ("matlab_v73_dag", "matlab_v73_cycle", "onnx_concat_chain", "onnx_fanout")[i % 4]
    step = i // 4 % 4
    if kind == "matlab_v73_dag":
        levels, fan = (8, 16, 24, 40)[step], int(rng.integers(2, 4))
        label = f"{kind} {levels} levels fan {fan} ({fan}**{levels} paths)"
    elif kind == "matlab_v73_cycle":
        levels, fan = (1, 2, 7, 50)[step], 1
        label = f"{kind} of {levels}"
    elif kind == "onnx_concat_chain":
        levels, fan = (4, 12, 20, 30)[step], 0
        label = f"{kind} {levels} doublings"
    else:
        levels, fan = 0, (10, 1000, 10000, 30000)[step]
        label = f"{kind} {fan} uses of W"

    def make(d):
        if kind.startswith("matlab"):
            _v73_file(d / "net.mat", lambda f: _v73_refs(f, levels, fan, kind.endswith("cycle")))
            return d / "net.mat"
        return _onnx_dag(d, levels, fan)
    return _case("dag", i, label, make, huge=True)


# ------------------------------------------------------------------------------------ aliasing

def laughs(depth: int, width: int) -> str:
    """One YAML flow value expanding to width**depth strings, each anchor defined where first used:
    `&a1 [&a0 [lol, lol], *a0]` for depth 2, width 2."""
    text = f"&a0 [{', '.join(['lol'] * width)}]"
    for k in range(1, depth):
        text = f"&a{k} [{text}, {', '.join([f'*a{k - 1}'] * (width - 1))}]"
    return text


def _cli_check(path: Path):
    """`batch PLAN --check` in-process: exit 0 reads, exit 2 with one line refuses, anything else raises."""
    from click.testing import CliRunner

    from rnnconvert.cli import cli
    from rnnconvert.errors import InputError
    res = CliRunner().invoke(cli, ["batch", str(path), "--check"])
    err = res.stderr if hasattr(res, "stderr") else res.output
    if res.exit_code == 2 and err.startswith("rnnconvert: error: ") and err.count("\n") == 1:
        raise InputError(err.strip()[len("rnnconvert: error: "):])
    if res.exit_code != 0:
        raise RuntimeError(f"CLI exit {res.exit_code}: {err[:300]!r}")


def _st_shared(d: Path, copies: int, body_mib: int) -> Path:
    data = (TORCH_DIR / "model.safetensors").read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header, body = json.loads(data[8:8 + n]), data[8 + n:]
    pad = (body_mib << 20) - len(body)
    body += bytes(max(0, pad))
    for k in range(copies):
        header[f"extra.{k}"] = {"dtype": "F32", "shape": [len(body) // 4], "data_offsets": [0, len(body) // 4 * 4]}
    real = [k for k in header if k != "__metadata__" and not k.startswith("extra.")]
    if copies == 0:             # the real tensors all start at byte 0: each a view of the first's bytes
        for k in real:
            a, b = header[k]["data_offsets"]
            header[k]["data_offsets"] = [0, b - a]
    text = json.dumps(header).encode()
    (d / "model.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + body)
    return d / "model.safetensors"


def _pt_views(d: Path, kind: str, side: int) -> Path:
    import torch
    sd = torch.load(TORCH_DIR / "model.pt", weights_only=True)
    if kind == "stride0-extra":
        sd["big"] = torch.zeros(1).expand(side, side)
    elif kind == "stride0-weight":
        k = next(iter(sd))
        sd[k] = torch.full((1,), 0.5).expand(sd[k].shape)
    else:                      # every tensor a view into one shared storage, plus a long stride-0 row
        flat = torch.cat([t.reshape(-1) for t in sd.values()])
        off = 0
        for k, t in list(sd.items()):
            sd[k] = flat[off:off + t.numel()].view(t.shape)
            off += t.numel()
        sd["rows"] = flat[:1].expand(side * side)
    torch.save(sd, d / "model.pt")
    return d / "model.pt"


def alias_gen(rng, i, seeds):
    kind = ("plan_arch_laughs", "arch_laughs", "mapping_laughs", "safetensors_shared", "pt_views",
            "plan_laughs")[i % 6]
    step = i // 6 % 4
    if kind.endswith("laughs"):
        depth, width = (3, 6, 9, 12)[step], int(rng.integers(9, 11))
        must = width ** depth >= 10 ** 8        # a hundred million strings from a 1 KB file: refuse
        label = f"{kind} {width}**{depth} expanded" + (" (must refuse)" if must else "")

        def make(d):
            _with_yaml_seeds(d, seeds)
            value = laughs(depth, width)
            if kind == "arch_laughs":
                (d / "arch.yaml").write_text(f"head: last_step\nignore: {value}\n")
                return d / "arch.yaml"
            if kind == "mapping_laughs":
                (d / "map.yaml").write_text("layers: [{layer: lstmLayer, InputWeights: W, RecurrentWeights: R, "
                                            f"Bias: b, OutputMode: last, Extra: {value}}}]\n")
                return d / "map.yaml"
            job = f"arch: {{head: last_step, ignore: {value}}}" if kind == "plan_arch_laughs" else f"dst: {value}"
            (d / "plan.yaml").write_text(f"jobs:\n- src: model.pt\n  {job}\n" +
                                         ("  dst: out.onnx\n" if kind == "plan_arch_laughs" else ""))
            return d / "plan.yaml"
        read = {"arch_laughs": _read_arch, "mapping_laughs": _read_mapping}.get(kind, _cli_check)
        case = _case("alias", i, label, make, read, huge=True)
        case.must_refuse = must
        return case
    if kind == "safetensors_shared":
        copies = (0, 10, 100, 400)[step]
        label = f"{kind} {copies} entries over one 2 MiB range" if copies else f"{kind} real tensors overlapping"
        return _case("alias", i, label, lambda d: _st_shared(d, copies, 2), huge=True)
    view = ("shared-storage", "stride0-weight", "stride0-extra", "stride0-extra")[step]
    side = (1 << 13, 1 << 14, 1 << 15, 1 << 16)[step]
    return _case("alias", i, f"{kind} {view} {side}", lambda d: _pt_views(d, view, side), huge=True)


GENERATORS = {"dag": dag_gen, "alias": alias_gen}
