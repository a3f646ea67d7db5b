"""LiteRT for the TFLite tests, used directly (not through rnnconvert's runtime module): its interpreter runs
a file, its own generated schema reader counts a file's ops.  Absent LiteRT skips the tests, except under CI
(CI set in the environment: .ci/run installs ai-edge-litert), where it fails them.
"""
from __future__ import annotations

import os
from collections import Counter

import numpy as np
import pytest


def litert():
    try:
        from ai_edge_litert import interpreter
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("ai-edge-litert is not installed, and CI must run the TFLite tests")
        pytest.skip("ai-edge-litert is not installed (.ci/run installs it)")
    return interpreter


def load(path):
    lite = litert()
    return lite.Interpreter(model_path=str(path),
                            experimental_op_resolver_type=lite.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)


def invoke(it, x):
    inp = it.get_input_details()[0]
    it.resize_tensor_input(inp["index"], list(x.shape), strict=True)
    it.allocate_tensors()
    it.set_tensor(inp["index"], np.ascontiguousarray(x.astype(inp["dtype"])))
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"]).copy()


def run(path, x):
    return invoke(load(path), x)


def op_counts(path, main_only: bool = False) -> Counter:
    """Builtin op names of every subgraph (or of the main one: a WHILE per direction of a looped layer; a loop
    returning its sequence nests a second WHILE in its body), read with LiteRT's own schema module."""
    litert()
    from ai_edge_litert import schema_py_generated as S
    names = {v: k for k, v in vars(S.BuiltinOperator).items() if not k.startswith("_")}
    m = S.Model.GetRootAsModel(open(path, "rb").read(), 0)
    codes = [max(m.OperatorCodes(i).BuiltinCode(), m.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(m.OperatorCodesLength())]
    out = Counter()
    for g in range(1 if main_only else m.SubgraphsLength()):
        sg = m.Subgraphs(g)
        for k in range(sg.OperatorsLength()):
            out[names[codes[sg.Operators(k).OpcodeIndex()]]] += 1
    return out
