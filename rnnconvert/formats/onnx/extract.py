"""One recurrent node of an ONNX graph, on its own: found anywhere (If/Loop/Scan subgraphs included),
read into a canonical layer, and cut out as a small graph onnxruntime runs (per-layer conversion).

A node's name is `node.name`, or its first output when the node has none or shares it (stable: it
is what `inspect` lists).  W, R, B, P and the initial states must be constants: initializers or
Constant nodes of the node's graph or of any graph around it, or what constant nodes (Identity,
Cast, Reshape, Slice, ...) compute from them
(folded within the budget of `_fold.py`).  An initial state fed at run time (a graph input, a
slice of a packed state tensor) is left out: the standalone layer starts from zeros.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from . import lite as onnx
from .lite import helper, numpy_helper

from ...model import gates
from ...errors import InputError, UnsupportedError
from ...model import DirectionWeights, Recurrent
from . import _acts
from ._fold import Folder, FoldRefused, declared_bytes, not_foldable

RECURRENT = {"LSTM": "lstm", "GRU": "gru", "RNN": "rnn"}
ROLES = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")


@dataclass
class NodeRef:
    name: str
    node: onnx.NodeProto
    scopes: list                 # graphs from the main graph to the one holding the node
    where: str                   # "main graph" or "If 'If_25' then_branch > ..."
    constants: dict = field(default_factory=dict)    # role -> array (W, R, B, P, initial_h, initial_c)
    runtime_inputs: list = field(default_factory=list)  # roles fed at run time (besides X)


def opset_of(proto: onnx.ModelProto) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 9)


def recurrent_nodes(proto: onnx.ModelProto) -> list[NodeRef]:
    """Every LSTM/GRU/RNN node of the graph and its subgraphs, in graph order."""
    found: list[NodeRef] = []

    def walk(graph, scopes, where):
        for n in graph.node:
            if n.op_type in RECURRENT and n.domain in ("", "ai.onnx"):
                found.append(NodeRef(n.name, n, scopes, where))
            for a in n.attribute:
                subs = ([(a.name, a.g)] if a.HasField("g") else []) + [(a.name, s) for s in a.graphs]
                for attr, sub in subs:
                    label = f"{n.op_type} '{n.name or n.output[0]}' {attr}"
                    walk(sub, scopes + [sub], label if where == "main graph" else f"{where} > {label}")

    walk(proto.graph, [proto.graph], "main graph")
    counts = Counter(r.name for r in found)          # names.count per node was quadratic in the nodes
    for r in found:
        if not r.name or counts[r.name] > 1:
            r.name = r.node.output[0]
    return found


class Constants:
    """Resolve a tensor name to a constant array, looking outwards through the scopes."""

    def __init__(self, scopes: list, opset: int, folder: Folder | None = None, indexed: dict | None = None):
        """`indexed`: {id(graph): its index}, shared by the Constants of one file so each graph is indexed once."""
        self.opset = opset
        self.folder = folder or Folder(0, None, opset)
        indexed = {} if indexed is None else indexed
        self.levels = []
        for g in scopes:
            if id(g) not in indexed:
                init = {t.name: t for t in g.initializer}
                producers = {o: n for n in g.node for o in n.output if o}
                inputs = {i.name for i in g.input}
                indexed[id(g)] = (init, producers, inputs)
            self.levels.append(indexed[id(g)])
        self.cache: dict[str, np.ndarray | None] = {}

    def get(self, name: str, depth: int = 0):
        if not name:
            return None
        if name in self.cache:
            return self.cache[name]
        self.cache[name] = None            # cycles and run-time values resolve to None
        value = self._resolve(name, depth)
        self.cache[name] = value
        return value

    def _resolve(self, name, depth):
        if depth > 64:
            return None
        for init, producers, inputs in reversed(self.levels):
            if name in init:
                return numpy_helper.to_array(init[name])
            if name in producers:
                node = producers[name]
                if not_foldable(node):
                    return None
                arrays = [self.get(i, depth + 1) if i else None for i in node.input]
                if any(a is None for i, a in zip(node.input, arrays) if i):
                    return None
                try:
                    outs = self.folder.fold(node, arrays)
                except FoldRefused:
                    raise
                except Exception:  # noqa: BLE001 - a node we cannot fold is a run-time value
                    return None
                return outs[list(node.output).index(name)]
            if name in inputs:
                return None
        return None


def folder_for(proto: onnx.ModelProto, path: str | None) -> Folder:
    """One folding budget for every node of the file, by the bytes of its initializers."""
    return Folder(sum(declared_bytes(t) for t in proto.graph.initializer), path, opset_of(proto))


class Resolver:
    """The constants of every recurrent node of one file: each graph indexed once, and one `Constants` per
    chain of scopes, so nodes sharing a weight fold it once (per node, 50,000 LSTM nodes over one graph of
    50,000 nodes indexed and folded it 50,000 times)."""

    def __init__(self, opset: int, folder: Folder | None = None):
        self.opset, self.folder = opset, folder
        self.indexed: dict = {}
        self.chains: dict = {}

    def constants(self, scopes: list) -> Constants:
        key = tuple(id(g) for g in scopes)
        if key not in self.chains:
            self.chains[key] = Constants(scopes, self.opset, self.folder, self.indexed)
        return self.chains[key]


def resolve(ref: NodeRef, opset: int, folder: Folder | None = None, resolver: Resolver | None = None) -> NodeRef:
    """Fill `ref.constants` and `ref.runtime_inputs`; constants are folded within `folder`'s budget (by
    default one for a file of no weights), and memoised in `resolver` when one is given."""
    consts = resolver.constants(ref.scopes) if resolver is not None else Constants(ref.scopes, opset, folder)
    for k, name in enumerate(ref.node.input):
        if k == 0 or not name or k >= len(ROLES):
            continue
        v = consts.get(name)
        if v is None:
            ref.runtime_inputs.append(ROLES[k])
        else:
            ref.constants[ROLES[k]] = np.asarray(v)
    return ref


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def to_layer(ref: NodeRef, path: str) -> tuple[Recurrent, list[str]]:
    """The node as a canonical layer returning its whole sequence [batch, time, D*H] (directions
    concatenated, aligned with input steps, as ONNX's Y); notes on what was left out."""
    node, c = ref.node, ref.constants
    where = f"{node.op_type} node '{ref.name}' ({ref.where})"
    a = _attrs(node)
    cell = RECURRENT[node.op_type]
    for role in ("W", "R", "B", "P"):
        if role in ref.runtime_inputs:
            raise UnsupportedError(f"{where}: its {role} is computed at run time, not stored in the file; "
                                   "only layers with stored weights convert", path=path, layer=ref.name)
    if "W" not in c or "R" not in c:
        raise InputError(f"{where}: W and R are required inputs", path=path, layer=ref.name)
    direction = a.get("direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    if direction not in ("forward", "reverse", "bidirectional"):
        raise InputError(f"{where}: direction '{direction}'", path=path, layer=ref.name)
    D, G = (2 if direction == "bidirectional" else 1), gates.GATE_COUNT[cell]
    W, R = c["W"].astype(np.float32), c["R"].astype(np.float32)
    H = int(a.get("hidden_size", R.shape[-1] if R.ndim == 3 else 0))
    B = c.get("B")
    if W.ndim != 3 or W.shape[:2] != (D, G * H) or R.shape != (D, G * H, H) or (
            B is not None and B.shape != (D, 2 * G * H)):
        raise InputError(f"{where}: W {tuple(W.shape)}, R {tuple(R.shape)}"
                         f"{'' if B is None else f', B {tuple(B.shape)}'} do not fit hidden_size={H}, "
                         f"{D} direction(s)", path=path, layer=ref.name)
    if int(a.get("layout", 0)):
        raise UnsupportedError(f"{where}: layout=1 (batch-major node); re-export with layout 0",
                               path=path, layer=ref.name)
    if cell == "lstm" and int(a.get("input_forget", 0)):
        raise UnsupportedError(f"{where}: input_forget=1 has no canonical form", path=path, layer=ref.name)
    peep = [None] * D
    if "P" in c and np.any(c["P"]):
        if c["P"].shape != (D, 3 * H):
            raise InputError(f"{where}: P has shape {tuple(c['P'].shape)}, expected ({D}, {3 * H})",
                             path=path, layer=ref.name)
        peep = [gates.peepholes_to_canonical(c["P"][d]) for d in range(D)]
    names = [n.decode() if isinstance(n, bytes) else n for n in a.get("activations", _acts.DEFAULT_ACTS[cell] * D)]
    try:
        acts = _acts.from_onnx(names, list(a.get("activation_alpha", [])), list(a.get("activation_beta", [])))
    except KeyError:
        raise UnsupportedError(f"{where}: activations {names}: rnnconvert knows {sorted(_acts.FROM_ONNX)}",
                               path=path, layer=ref.name) from None
    n = len(_acts.DEFAULT_ACTS[cell])
    if len(acts) == 2 * n and acts[:n] != acts[n:]:
        raise UnsupportedError(f"{where}: its two directions use different activations ({names})",
                               path=path, layer=ref.name)
    notes = []
    if "sequence_lens" in c or "sequence_lens" in ref.runtime_inputs:
        notes.append(f"layer '{ref.name}': sequence_lens left out; the standalone layer runs every sequence to "
                     "its full length")
    states = {}
    for role in ("initial_h", "initial_c"):
        v = c.get(role)
        if role in ref.runtime_inputs:
            notes.append(f"layer '{ref.name}': {role} is not a constant of the file (a graph input or computed "
                         "at run time); the standalone layer starts from zero states")
        if v is not None and np.any(v):
            v = v.astype(np.float32)
            if v.ndim != 3 or v.shape[0] != D or v.shape[2] != H:
                raise InputError(f"{where}: {role} has shape {v.shape}, expected ({D}, batch, {H})",
                                 path=path, layer=ref.name)
            states[role] = [v[d, 0].copy() if v.shape[1] == 1 else v[d].copy() for d in range(D)]
    weights = []
    for d in range(D):
        b = B[d].astype(np.float32) if B is not None else np.zeros(2 * G * H, np.float32)
        weights.append(DirectionWeights(
            W=gates.to_canonical(W[d], cell, "onnx"), R=gates.to_canonical(R[d], cell, "onnx"),
            Wb=gates.to_canonical(b[:G * H], cell, "onnx"), Rb=gates.to_canonical(b[G * H:], cell, "onnx"),
            h0=states.get("initial_h", [None] * D)[d],
            c0=states.get("initial_c", [None] * D)[d] if cell == "lstm" else None, P=peep[d]))
    layer = Recurrent(name=ref.name, cell=cell, hidden=H, direction=direction, weights=weights,
                      activations=acts[:n], output="sequence", clip=a.get("clip"),
                      reset_after=bool(int(a.get("linear_before_reset", 0))) if cell == "gru" else True,
                      has_input_bias=B is not None, has_recurrent_bias=B is not None)
    return layer, notes


def node_model(ref: NodeRef, opset: int, batch: int | None = None) -> onnx.ModelProto:
    """The node alone: X [time, batch, features] as graph input, its constant inputs as initializers
    (run-time states and sequence_lens left out: zeros, full length), Y as the graph output."""
    node = ref.node
    inputs, inits = ["X"], []
    for k, name in enumerate(list(node.input)[1:], start=1):
        role = ROLES[k] if k < len(ROLES) else None
        if role in ref.constants and name and role != "sequence_lens":
            v = ref.constants[role]
            if role in ("W", "R", "B", "P", "initial_h", "initial_c"):
                v = v.astype(np.float32)
            if role in ("initial_h", "initial_c") and batch and v.ndim == 3 and v.shape[1] == 1:
                v = np.repeat(v, batch, axis=1)         # a constant state for batch 1, fed to every row
            inits.append(numpy_helper.from_array(np.ascontiguousarray(v), f"c_{role}"))
            inputs.append(f"c_{role}")
        else:
            inputs.append("")
    while inputs and not inputs[-1]:
        inputs.pop()
    copy = helper.make_node(node.op_type, inputs, ["Y"], name=ref.name or "node")
    copy.attribute.extend(node.attribute)
    x = helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, [None, None, int(ref.constants["W"].shape[2])])
    y = helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, None)
    graph = helper.make_graph([copy], "extracted", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", max(opset, 7))],
                              producer_name="rnnconvert-extract")
    model.ir_version = min(model.ir_version, 8)
    return model


def run_node(ref: NodeRef, opset: int, x: np.ndarray) -> np.ndarray:
    """onnxruntime on the extracted node: x [batch, time, features] -> [batch, time, D*H]."""
    from .runtime import import_onnxruntime, quiet_options
    ort = import_onnxruntime()
    xt = np.ascontiguousarray(np.swapaxes(np.asarray(x, np.float32), 0, 1))
    sess = ort.InferenceSession(node_model(ref, opset, xt.shape[1]).SerializeToString(), quiet_options(ort),
                                providers=["CPUExecutionProvider"])
    y = sess.run(["Y"], {"X": xt})[0]                         # [T, D, B, H]
    T, D, B, H = y.shape
    return np.ascontiguousarray(np.transpose(y, (2, 0, 1, 3)).reshape(B, T, D * H))
