"""rnnconvert's own form (`.rnnc`): a zip holding `model.json` and one `.npy` per array.

Lossless by construction: arrays keep their dtype and bits, every setting of the canonical model
is written.  Array member names carry the gate order (`layers/0/forward/W_ifgo.npy`).  Reading is bounded by the
file: the manifest through `safety.read_json`, each member through `safety.read_npy`, and the arrays the
manifest names (one array may be named twice) by MATERIALISE_RATIO x the file's size.
The manifest is described by `schemas/model.schema.json`.
"""
from __future__ import annotations

import io
import os
import json
import zipfile
import zlib

import numpy as np

from ..model import gates
from ..errors import InputError
from ..files.safety import check_zip, read_member, read_npy
from ..files.text import read_json
from ..model import LAYER_KINDS, Activation, DirectionWeights, InputSpec, Model, Recurrent, StatePort, layer_fields
from ..model.assumptions import earlier

FORMAT_VERSION = 1
MATERIALISE_RATIO, MATERIALISE_SLACK = 4, 16 << 20     # bytes the manifest may name, relative to the file
MANIFEST = "model.json"


def sniff(path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return MANIFEST in z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def _array_name(prefix: str, key: str, layer) -> str:
    if isinstance(layer, Recurrent) and key in ("W", "R", "Wb", "Rb"):
        return f"{prefix}/{key}_{layer.gate_order}"
    return f"{prefix}/{key}"


def to_manifest(model: Model) -> tuple[dict, dict[str, np.ndarray]]:
    arrays: dict[str, np.ndarray] = {}

    def ref(name, a):
        arrays[name] = np.asarray(a)
        return {"array": name, "shape": list(a.shape), "dtype": str(a.dtype)}

    layers = []
    for k, layer in enumerate(model.layers):
        entry = {"kind": layer.kind}
        for key, v in layer_fields(layer).items():
            entry[key] = v.to_dict() if isinstance(v, Activation) else v
        if isinstance(layer, Recurrent):
            entry["gate_order"] = layer.gate_order
            entry["activations"] = [a.to_dict() for a in layer.activations]
            entry["weights"] = []
            for d, w in zip(layer.direction_names(), layer.weights):
                wd = {"direction": d}
                for a in DirectionWeights.ARRAYS:
                    v = getattr(w, a)
                    if v is not None:
                        wd[a] = ref(_array_name(f"layers/{k}/{d}", a, layer), v)
                entry["weights"].append(wd)
        else:
            for key, v in layer.arrays().items():
                entry[key] = ref(f"layers/{k}/{key}", v)
        layers.append(entry)
    manifest = {
        "format": "rnnconvert", "version": FORMAT_VERSION, "name": model.name,
        "input": vars(model.input), "output_name": model.output_name,
        "source": model.source, "layers": layers,
    }
    if model.has_state_io:
        manifest["state_inputs"] = [p.to_dict() for p in model.state_inputs]
        manifest["state_outputs"] = [p.to_dict() for p in model.state_outputs]
    return manifest, arrays


def from_manifest(manifest: dict, arrays: dict[str, np.ndarray], path=None, budget: int | None = None) -> Model:
    """The model `manifest` describes over `arrays`.  `budget`: the bytes all array references together may
    name (one array named by a thousand layers would be written a thousand times); None: unbounded."""
    named = [0]
    try:
        if manifest.get("format") != "rnnconvert":
            raise InputError("model.json is not an rnnconvert manifest", path=path)
        if manifest.get("version") != FORMAT_VERSION:
            raise InputError(f"manifest version {manifest.get('version')}, this rnnconvert reads "
                             f"version {FORMAT_VERSION}", path=path)

        def arr(r):
            if r is None:
                return None
            try:
                a = arrays[r["array"]]
            except KeyError:
                raise InputError(f"array '{r['array']}' named in model.json is missing", path=path) from None
            named[0] += a.nbytes
            if budget is not None and named[0] > budget:
                raise InputError(f"model.json names arrays of {named[0]:,} bytes in all by the time it names "
                                 f"'{r['array']}', more than {MATERIALISE_RATIO}x the file's size: an array named "
                                 "by many layers is refused", path=path)
            return a

        layers = []
        for k, e in enumerate(manifest["layers"]):
            e = dict(e)
            kind = e.pop("kind")
            if kind in gates.CANONICAL:
                order = e.pop("gate_order")
                if order != gates.CANONICAL[kind]:
                    raise InputError(f"layers[{k}]: gate_order '{order}', the canonical order of "
                                     f"{kind.upper()} is '{gates.CANONICAL[kind]}'", path=path)
                ws = [DirectionWeights(**{a: arr(w.get(a)) for a in DirectionWeights.ARRAYS})
                      for w in e.pop("weights")]
                acts = [Activation(**a) for a in e.pop("activations")]
                layers.append(Recurrent(weights=ws, activations=acts, **e))
            elif kind in LAYER_KINDS:
                cls = LAYER_KINDS[kind]
                for key, v in list(e.items()):
                    if isinstance(v, dict) and "array" in v:
                        e[key] = arr(v)
                    elif isinstance(v, dict) and "name" in v:
                        e[key] = Activation(**v)
                    elif isinstance(v, list):             # conv1d pads: a JSON array of a tuple
                        e[key] = tuple(v)
                layers.append(cls(**e))
            else:
                raise InputError(f"layers[{k}]: unknown layer kind '{kind}'", path=path)
        return Model(layers=layers, input=InputSpec(**manifest["input"]),
                     output_name=manifest.get("output_name", "output"),
                     name=manifest.get("name", "model"), source=earlier(manifest.get("source", {})),
                     state_inputs=[StatePort(**p) for p in manifest.get("state_inputs", [])],
                     state_outputs=[StatePort(**p) for p in manifest.get("state_outputs", [])],
                     ).validate(path)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise InputError(f"model.json does not match the schema ({type(exc).__name__}: {exc})",
                         path=path) from None


def read(path, **options) -> Model:
    try:
        with zipfile.ZipFile(path) as z:
            check_zip(z, path, what=".rnnc archive")
            manifest = read_json(read_member(z, MANIFEST, path), path, f"{MANIFEST} (the manifest)")
            arrays = {name[:-4]: read_npy(z, name, path) for name in z.namelist() if name.endswith(".npy")}
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, ValueError, OSError, EOFError, NotImplementedError,
            zlib.error) as exc:
        raise InputError(f"not a readable .rnnc file ({exc})", path=str(path)) from None
    budget = MATERIALISE_RATIO * os.path.getsize(path) + MATERIALISE_SLACK
    return from_manifest(manifest, arrays, path=str(path), budget=budget)


def write(model: Model, path, **options) -> list[str]:
    manifest, arrays = to_manifest(model)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        z.writestr(MANIFEST, json.dumps(manifest, indent=1, default=_json_default))
        for name, a in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(a), allow_pickle=False)
            z.writestr(name + ".npy", buf.getvalue())
    return []


def _json_default(v):
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"{type(v).__name__} is not JSON serialisable")
