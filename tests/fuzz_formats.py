"""Fuzz generators for ONNX, PyTorch, safetensors and .rnnc (MATLAB and YAML: fuzz_inputs.py).

Each generator is `gen(rng, seeds, i) -> (label, make, huge)`; `make(dir)` writes the case and returns
its path (or (path, label)).  `gen.prepare(seeds_dir)` builds the seed files once per run.
"""
from __future__ import annotations

import io
import json
import os
import struct
from pathlib import Path

import numpy as np

from fuzz_cases import ONNX_SEEDS, TORCH_SEEDS, _pick, _read, _writer, mutate_zip
from fuzzing import FIXTURES, mutate_bytes, mutate_tree


def _bytes_or(rng, seed: Path, name: str, p: float):
    if rng.random() < p:
        label, data = mutate_bytes(seed.read_bytes(), rng)
        return label, _writer(name, data), False
    return None


# ------------------------------------------------------------------------------------ ONNX

def mutate_onnx(proto, rng, d: Path) -> str:
    import onnx
    from onnx import numpy_helper
    g = proto.graph
    op = int(rng.integers(10))
    inits = list(g.initializer)
    t = _pick(rng, inits) if inits else None
    if op == 0 and t is not None:
        t.dims[:] = [max(0, x + int(rng.integers(-1, 2))) for x in t.dims] + ([3] if rng.random() < 0.2 else [])
        return f"dims {t.name}"
    if op == 1 and t is not None:
        t.data_type = _pick(rng, [onnx.TensorProto.INT64, onnx.TensorProto.DOUBLE, onnx.TensorProto.STRING,
                                  onnx.TensorProto.FLOAT16, onnx.TensorProto.BOOL, 0, 99])
        return f"dtype {t.name}"
    if op == 2 and t is not None:
        a = numpy_helper.to_array(t).copy()
        if a.dtype.kind == "f" and a.size:
            a.reshape(-1)[int(rng.integers(a.size))] = _pick(rng, [np.nan, np.inf, -np.inf])
            t.CopyFrom(numpy_helper.from_array(a, t.name))
            return f"nonfinite {t.name}"
    if op == 3 and t is not None:    # huge declared dims over a small buffer
        t.dims[:] = [1 << 20, 1 << 20] if rng.random() < 0.5 else [1 << 40]
        return f"huge {t.name}"
    if op == 4 and t is not None:    # external data: inside, outside, absolute, missing, symlink
        raw = numpy_helper.to_array(t).tobytes()
        where = _pick(rng, ["w.bin", "../w.bin", "/etc/hostname", "sub/../../w.bin", "missing.bin", "link.bin"])
        (d / "w.bin").write_bytes(raw)
        (d.parent / "w.bin").write_bytes(raw)
        if where == "link.bin" and not (d / "link.bin").exists():
            os.symlink(d.parent / "w.bin", d / "link.bin")
        t.ClearField("raw_data")
        t.ClearField("float_data")
        t.data_location = onnx.TensorProto.EXTERNAL
        del t.external_data[:]
        length = len(raw) if rng.random() < 0.7 else 1 << 40
        for k, v in (("location", where), ("offset", "0"), ("length", str(length))):
            e = t.external_data.add()
            e.key, e.value = k, v
        return f"external {where} length {length}" + (" huge" if length > len(raw) else "")
    nodes = list(g.node)
    node = _pick(rng, nodes) if nodes else None
    if op == 5 and node is not None and node.attribute:
        a = _pick(rng, list(node.attribute))
        if rng.random() < 0.5:
            node.attribute.remove(a)
            return f"drop-attr {node.op_type}.{a.name}"
        if a.type == onnx.AttributeProto.INT:
            a.i = _pick(rng, [0, -1, 1 << 40, a.i + 1, a.i * 2])
        elif a.type == onnx.AttributeProto.STRING:
            a.s = _pick(rng, [b"", b"sideways", b"\xff", b"Relu"])
        elif a.type == onnx.AttributeProto.STRINGS:
            a.strings[:] = _pick(rng, [[], [b"Foo"], [b"Tanh"] * 9])
        elif a.type == onnx.AttributeProto.FLOAT:
            a.f = _pick(rng, [float("nan"), -1.0, 1e30])
        elif a.type == onnx.AttributeProto.INTS:
            a.ints[:] = _pick(rng, [[], [5, 5, 5], [1 << 40]])
        return f"attr {node.op_type}.{a.name}"
    if op == 6 and node is not None:
        if rng.random() < 0.5:
            g.node.remove(node)
            return f"drop-node {node.op_type}"
        node.op_type = _pick(rng, ["LSTM", "GRU", "RNN", "Scan", "Loop", "Transpose", "Foo"])
        return f"op-type {node.op_type}"
    if op == 7 and node is not None and node.input:
        k = int(rng.integers(len(node.input)))
        node.input[k] = _pick(rng, ["", "nowhere", node.input[k] + "x", node.output[0] if node.output else ""])
        return f"rewire {node.op_type}.in{k}"
    if op == 8 and g.input:
        i = g.input[0]
        dims = i.type.tensor_type.shape.dim
        if dims and rng.random() < 0.6:
            dims[int(rng.integers(len(dims)))].dim_value = _pick(rng, [0, 1, 7, 1 << 40])
        else:
            i.type.tensor_type.elem_type = _pick(rng, [onnx.TensorProto.INT64, onnx.TensorProto.DOUBLE, 0])
        return "graph-input"
    if proto.metadata_props:
        m = proto.metadata_props[0]
        try:
            m.value = json.dumps(mutate_tree(json.loads(m.value), rng, int(rng.integers(1, 4))))
        except ValueError:
            m.value = "{"
        return f"metadata {m.key}"
    proto.opset_import[0].version = _pick(rng, [1, 7, 30, -1])
    return "opset"


def onnx_gen(rng, seeds, i):
    seed = FIXTURES / _pick(rng, ONNX_SEEDS + seeds)
    early = _bytes_or(rng, seed, "model.onnx", 0.35)
    if early:
        return early

    def make(d):
        import onnx
        proto = onnx.load(str(seed))
        label = mutate_onnx(proto, rng, d)
        (d / "model.onnx").write_bytes(proto.SerializeToString())
        return d / "model.onnx", label
    return "onnx", make, False


def _onnx_prepare(seeds_dir):
    import rnnconvert
    out = seeds_dir / "scan.onnx"
    if not out.exists():
        rnnconvert.write(rnnconvert.read(FIXTURES / "tfkeras2/simplernn_selu_dense/model.h5"), out)
    return [out]


onnx_gen.prepare = _onnx_prepare


# ------------------------------------------------------------------------------------ PyTorch

def _state_dict_mutation(sd: dict, rng) -> tuple[str, object]:
    import torch
    sd = dict(sd)
    key = _pick(rng, list(sd))
    t = sd[key]
    op = int(rng.integers(9))
    if op == 0:
        new = t[: max(0, t.shape[0] - int(rng.integers(1, 3)))] if t.ndim else t.reshape(1)
        sd[key] = new if rng.random() < 0.5 else torch.cat([t, t[:1]]) if t.ndim else t
        return f"shape {key}", sd
    if op == 1:
        sd[key] = t.to(_pick(rng, [torch.int64, torch.float16, torch.bool, torch.complex64, torch.bfloat16,
                                   torch.float64, torch.uint8]))
        return f"dtype {key}", sd
    if op == 2:
        del sd[key]
        return f"drop {key}", sd
    if op == 3:
        sd[str(key) + _pick(rng, ["_extra", ".x", ""]) + "2"] = _pick(rng, [torch.zeros(3), 5, "s", [1], {"a": 1}, None])
        return "extra", sd
    if op == 4 and t.is_floating_point() and t.numel():
        t = t.clone()
        t.view(-1)[int(rng.integers(t.numel()))] = _pick(rng, [float("nan"), float("inf"), -float("inf")])
        sd[key] = t
        return f"nonfinite {key}", sd
    if op == 5:
        sd[str(key).replace("l0", "l5").replace("weight", "bias")] = sd.pop(key)
        return f"rename {key}", sd
    if op == 6:
        return "top-level", _pick(rng, [[1, 2], torch.zeros(2), 7, {"state_dict": 3}, {}, {"model": sd}, {1: t}])
    if op == 7 and t.ndim == 2:
        sd[key] = t.t().contiguous()
        return f"transpose {key}", sd
    sd[key] = t.reshape(-1)
    return f"flatten {key}", sd


# GLOBALs a mutated data.pkl may name instead of its own: allowed ones used in the wrong place, and foreign ones
_PICKLE_GLOBALS = [b"os\nsystem", b"torch\nHalfStorage", b"torch\nBFloat16Storage", b"torch._utils\n_rebuild_qtensor",
                   b"torch._utils\n_rebuild_parameter", b"collections\nCounter", b"builtins\nbytearray", b"torch\nSize",
                   b"torch\nfloat8_e4m3fn", b"torch.storage\nUntypedStorage", b"torch\nQInt8Storage", b"torch\ndevice"]


def _pickle_mutation(data: bytes, rng) -> tuple[str, bytes]:
    """A torch zip whose data.pkl is edited as a pickle: a GLOBAL renamed, an integer operand changed
    (storage offsets, sizes, strides, element counts), an opcode swapped, or its bytes mutated."""
    import zipfile
    z = zipfile.ZipFile(io.BytesIO(data))
    members = [(m.filename, z.read(m.filename)) for m in z.infolist()]
    k = next(j for j, (n, _) in enumerate(members) if n.endswith("data.pkl"))
    pkl = bytearray(members[k][1])
    op = int(rng.integers(4))
    if op == 0:
        starts = [j for j in range(len(pkl) - 1) if pkl[j] == ord("c") and pkl[j + 1] in b"tc"]
        j = _pick(rng, starts)
        end = pkl.index(b"\n", pkl.index(b"\n", j) + 1)
        new = _pick(rng, _PICKLE_GLOBALS)
        pkl[j + 1:end] = new
        label = f"pickle global@{j}={new.decode().replace(chr(10), '.')}"
    elif op == 1:
        ints = [j for j in range(len(pkl) - 1) if pkl[j] == ord("K")]
        j = _pick(rng, ints)
        value = _pick(rng, [0, 1, 255, -1, 2 ** 31 - 1, -2 ** 31, 2 ** 40, 10 ** 30])
        enc = b"K" + bytes([value]) if 0 <= value < 256 else b"J" + struct.pack("<i", value) \
            if -2 ** 31 <= value < 2 ** 31 else b"\x8a" + bytes([16]) + value.to_bytes(16, "little", signed=True)
        pkl[j:j + 2] = enc
        label = f"pickle int@{j}={value}"
    elif op == 2:
        j = int(rng.integers(2, len(pkl) - 1))
        new = _pick(rng, b"R\x81bsuae(t\x85\x86\x87N)]}\x8fQhq.")
        pkl[j] = new
        label = f"pickle opcode@{j}={new:#x}"
    else:
        label, mutated = mutate_bytes(bytes(pkl), rng)
        pkl = bytearray(mutated)
        label = "pickle " + label
    members[k] = (members[k][0], bytes(pkl))
    from fuzz_cases import zip_with
    return label, zip_with(members)


def torch_gen(rng, seeds, i):
    folder = FIXTURES / _pick(rng, TORCH_SEEDS)
    seed = folder / "model.pt" if rng.random() < 0.8 else seeds["legacy"]
    early = _bytes_or(rng, seed, "model.pt", 0.4)
    if early:
        return early
    if seed.name == "model.pt" and rng.random() < 0.4:
        label, data = _pickle_mutation(seed.read_bytes(), rng)
        return label, _writer("model.pt", data), False

    def make(d):
        import torch
        sd = torch.load(seed, weights_only=True)
        label, obj = _state_dict_mutation(sd, rng)
        if rng.random() < 0.3 and isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            label2, obj2 = _state_dict_mutation(obj, rng)
            label, obj = f"{label} + {label2}", obj2
        torch.save(obj, d / "model.pt", _use_new_zipfile_serialization=rng.random() < 0.8)
        return d / "model.pt", label
    return "pt", make, False


def _torch_prepare(seeds_dir):
    out = seeds_dir / "legacy.pt"
    if not out.exists():
        out.write_bytes(legacy_pt(FIXTURES / TORCH_SEEDS[0] / "model.pt"))
    return {"legacy": out}


def legacy_pt(path) -> bytes:
    """The state dict at `path` in torch's legacy (pre-1.6, not zip) format, the same bytes in every
    process: the legacy writer names each storage by its memory address and orders the storages by
    that name, so the tensors are made views of one storage whose name is then replaced by "0"."""
    import torch
    sd = torch.load(path, weights_only=True)
    flat = torch.cat([t.reshape(-1) for t in sd.values()])
    views, offset = {}, 0
    for key, t in sd.items():
        views[key] = flat[offset:offset + t.numel()].view(t.shape)
        offset += t.numel()
    buf = io.BytesIO()
    torch.save(views, buf, _use_new_zipfile_serialization=False)
    name = str(flat.untyped_storage()._cdata).encode()
    data = buf.getvalue().replace(b"X" + struct.pack("<I", len(name)) + name, b"X" + struct.pack("<I", 1) + b"0")
    assert name not in data, "the storage name is pickled in a form legacy_pt does not know"
    return data


torch_gen.prepare = _torch_prepare


# ------------------------------------------------------------------------------------ safetensors

def safetensors_gen(rng, seeds, i):
    seed = FIXTURES / _pick(rng, TORCH_SEEDS) / "model.safetensors"
    early = _bytes_or(rng, seed, "model.safetensors", 0.3)
    if early:
        return early
    data = seed.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header, body = json.loads(data[8:8 + n]), data[8 + n:]
    op = int(rng.integers(4))
    if op == 0:
        header = mutate_tree(header, rng, int(rng.integers(1, 4)))
        label = "header"
    elif op == 1:              # huge declared shape, small offsets
        name = _pick(rng, [k for k in header if k != "__metadata__"])
        header[name]["shape"] = _pick(rng, [[1 << 31, 1 << 31], [1 << 62], [-1, 4]])
        label = f"huge shape {name}"
    elif op == 2:              # NaN in a tensor: same layout, valid file
        from rnnconvert.formats.torch import safetensors_io
        tensors, meta = safetensors_io.read(seed)
        name = _pick(rng, list(tensors))
        a = tensors[name].copy()
        a.reshape(-1)[0] = _pick(rng, [np.nan, np.inf])
        tensors[name] = a
        buf = seed.parent
        del buf

        def make(d):
            safetensors_io.write(d / "model.safetensors", tensors, meta)
            return d / "model.safetensors"
        return f"nonfinite {name}", make, False
    else:                      # header length lies
        return "header-length", _writer("model.safetensors",
                                        struct.pack("<Q", _pick(rng, [n + 1, n - 1, 1 << 50, 0])) + data[8:]), True
    text = json.dumps(header).encode()
    return label, _writer("model.safetensors", struct.pack("<Q", len(text)) + text + body), "huge" in label


# ------------------------------------------------------------------------------------ .rnnc

def rnnc_gen(rng, seeds, i):
    seed = _pick(rng, seeds)
    early = _bytes_or(rng, seed, "model.rnnc", 0.3)
    if early:
        return early
    data = seed.read_bytes()
    if rng.random() < 0.3:        # an array member replaced: wrong dtype/shape, NaN, huge declared shape
        import zipfile
        z = zipfile.ZipFile(io.BytesIO(data))
        members = [(n, z.read(n)) for n in z.namelist()]
        k = _pick(rng, [j for j, (n, _) in enumerate(members) if n.endswith(".npy")])
        name, body = members[k]
        a = np.lib.format.read_array(io.BytesIO(body))
        op = int(rng.integers(4))
        if op == 0:
            a = a.astype(_pick(rng, [np.int8, np.complex64, np.bool_, "U3", np.float16]))
        elif op == 1:
            a = a.reshape(-1)[: max(0, a.size - 1)]
        elif op == 2 and a.dtype.kind == "f" and a.size:
            a = a.copy()
            a.reshape(-1)[0] = np.nan
        buf = io.BytesIO()
        np.lib.format.write_array(buf, a)
        body = buf.getvalue()
        if op == 3:              # the .npy header declares a shape its bytes cannot hold
            head = np.lib.format.header_data_from_array_1_0(a)
            head["shape"] = (1 << 31, 1 << 4)
            buf = io.BytesIO()
            np.lib.format.write_array_header_1_0(buf, head)
            body = buf.getvalue() + a.tobytes()
        members[k] = (name, body)
        from fuzz_cases import zip_with
        return f"array {name} op{op}" + (" huge" if op == 3 else ""), _writer("model.rnnc", zip_with(members)), op == 3

    def make(d):
        label, new = mutate_zip(data, rng, d, ("model.json",), None)
        return _writer("model.rnnc", new)(d), label
    return "rnnc", make, False


def _rnnc_prepare(seeds_dir):
    import rnnconvert
    out = []
    for rel in ("tfkeras2/bigru_ave_last/model.h5", "torch_onnx/lstm_initial_state_const/model.onnx",
                "keras3/stacked_lstm_dense/model.keras"):
        p = seeds_dir / (rel.replace("/", "_") + ".rnnc")
        if not p.exists():
            rnnconvert.write(rnnconvert.read(FIXTURES / rel), p)
        out.append(p)
    return out


rnnc_gen.prepare = _rnnc_prepare


from fuzz_inputs import (_read_arch, _read_mapping, _read_plan, arch_gen, mapping_gen,  # noqa: E402
                         matlab_v5_gen, matlab_v73_gen, plan_gen)
from fuzz_tfjs import tfjs_gen  # noqa: E402


GENERATORS = {
    "onnx": (onnx_gen, _read(), b"\x08", "model.onnx"),
    "torch_pt": (torch_gen, _read(), b"PK\x03\x04", "model.pt"),
    "safetensors": (safetensors_gen, _read(), b"\x40\x00\x00\x00\x00\x00\x00\x00{", "model.safetensors"),
    "matlab_v5": (matlab_v5_gen, _read(), b"MATLAB 5.0 MAT-file" + b" " * 97 + b"\0" * 8 + b"\x00\x01IM",
                  "net.mat"),
    "matlab_v73": (matlab_v73_gen, _read(), b"MATLAB 7.3 MAT-file", "net.mat"),
    "rnnc": (rnnc_gen, _read(), b"PK\x03\x04", "model.rnnc"),
    "arch_yaml": (arch_gen, _read_arch, b"", "arch.yaml"),
    "mapping_yaml": (mapping_gen, _read_mapping, b"", "map.yaml"),
    "batch_plan": (plan_gen, _read_plan, b"", "plan.yaml"),
    "tfjs": (tfjs_gen, _read(), b"{", "model.json"),
}
