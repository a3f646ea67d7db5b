"""A loop that returns its whole sequence, in chunks of K steps: LiteRT's WHILE copies each loop variable the
body changes once per step, so one loop carrying the output [batch, time, S] copies time * time rows; two
nested loops copy time * time / K (the outer one, once per chunk) plus time * K (the inner one's chunk).

Main subgraph: Y zeros [batch, chunks * K, S] (time padded to a multiple of K); outer WHILE over (c, chunks,
XW, h, [c_state], [mask, out], Y, T).  Outer body: the chunk's steps idx = c*K + [0..K) (GATHER of Y, and of
XW and the mask at idx clipped to T - 1: static shapes), inner WHILE over (t, min(K, T - c*K), XW chunk, h,
[c_state], [mask chunk, out], Y chunk) whose cond and body are `loop.py`'s (the cell, the step written with
DYNAMIC_UPDATE_SLICE), then the chunk written into Y at c*K (DYNAMIC_UPDATE_SLICE).  After it, Y's first T
steps (SLICE).  The steps past T never run: h is the state after T steps.  The metadata's "body" names the inner body, which holds the recurrent weights.
"""
from __future__ import annotations

import numpy as np

from . import schema as s
from .emit import Emitter, Value

K = 32          # steps per chunk


def emit_chunks(e: Emitter, S: int, name: str, shape: Value, steps: Value, xw: Value, states: list[Value],
                masked: list[Value], inputs, cond, body) -> tuple[Value, int]:
    """The sequence [batch, time, S] in processing order, and the inner body's subgraph index.  From `loop.py`:
    inputs(emitter, loop values) makes a subgraph's inputs like them, cond(emitter, loop values) the count
    t < T, body(emitter, loop values) the cell's step.  masked: [] or [mask [batch, time], out0 [batch, S]]."""
    tm = e.g.model
    B = xw.dims[0]
    chunks = e.op("FLOOR_DIV", [e.op("ADD", [steps.index, e.ints(f"{name}k_minus_1", K - 1)],
                                     e.new(f"{name}steps_plus", [], s.INT32), "AddOptions").index,
                                e.ints(f"{name}k", K)], e.new(f"{name}chunks", [], s.INT32))
    padded = e.op("MUL", [chunks.index, e.ints(f"{name}k2", K)], e.new(f"{name}padded_steps", [], s.INT32),
                  "MulOptions")
    bt = e.op("STRIDED_SLICE", [shape.index, e.ints(f"{name}y0/b", [0]), e.ints(f"{name}y0/e", [1]),
                                e.ints(f"{name}y0/s", [1])], e.new(f"{name}y0/batch", [1], s.INT32),
              "StridedSliceOptions")
    pt = e.op("EXPAND_DIMS", [padded.index, e.ints(f"{name}y0/axis", 0)], e.new(f"{name}y0/time", [1], s.INT32))
    dims = e.op("CONCATENATION", [bt.index, pt.index, e.ints(f"{name}y0/size", [S])],
                e.new(f"{name}y0/dims", [3], s.INT32), "ConcatenationOptions", axis=0)
    y0 = e.op("FILL", [dims.index, e.scalar(f"{name}y0/zero", 0.0)], e.new(f"{name}y0", [B, None, S]))
    c0 = e.op("SUB", [steps.index, steps.index], e.new(f"{name}chunk0", [], s.INT32), "SubOptions")
    outer_in = [c0, chunks, xw] + states + masked + [y0, steps]
    outs = [e.new(f"{name}chunks/{k}", v.dims, v.dtype) for k, v in enumerate(outer_in)]
    cond_index, body_index = len(tm.subgraphs), len(tm.subgraphs) + 1
    cond(Emitter(tm.subgraph(f"{name}chunks_cond")), outer_in)
    o = Emitter(tm.subgraph(f"{name}chunks_body"))
    vals = inputs(o, outer_in)
    ci, n_chunks, xs, y, total = vals[0], vals[1], vals[2], vals[-2], vals[-1]
    hs, mv = vals[3:3 + len(states)], vals[3 + len(states):-2]
    base = o.op("MUL", [ci.index, o.ints("k", K)], o.new("first_step", [], s.INT32), "MulOptions")
    idx = o.op("ADD", [base.index, o.ints("chunk_steps", np.arange(K))], o.new("steps", [K], s.INT32), "AddOptions")
    last = o.op("SUB", [total.index, o.ints("one_step", 1)], o.new("last_step", [], s.INT32), "SubOptions")
    real = o.op("MINIMUM", [idx.index, last.index], o.new("steps_in_input", [K], s.INT32))
    x_chunk = o.op("GATHER", [xs.index, real.index], o.new("XW_chunk", [B, K, xs.dims[2]]), "GatherOptions", axis=1)
    y_chunk = o.op("GATHER", [y.index, idx.index], o.new("y_chunk", [B, K, S]), "GatherOptions", axis=1)
    if mv:
        mv = [o.op("GATHER", [mv[0].index, real.index], o.new("mask_chunk", [B, K], s.BOOL), "GatherOptions",
                   axis=1), mv[1]]
    left = o.op("SUB", [total.index, base.index], o.new("steps_left", [], s.INT32), "SubOptions")
    kt = o.op("MINIMUM", [left.index, o.ints("k_steps", K)], o.new("chunk_length", [], s.INT32))
    t0 = o.op("SUB", [kt.index, kt.index], o.new("t0", [], s.INT32), "SubOptions")
    inner_in = [t0, kt, x_chunk] + hs + mv + [y_chunk]
    inner_out = [o.new(f"loop/{k}", v.dims, v.dtype) for k, v in enumerate(inner_in)]
    ic, ib = len(tm.subgraphs), len(tm.subgraphs) + 1
    cond(Emitter(tm.subgraph(f"{name}cond")), inner_in)
    body(Emitter(tm.subgraph(f"{name}body")), inner_in)
    o.counts["WHILE"] = 1
    o.g.op("WHILE", [v.index for v in inner_in], [v.index for v in inner_out], "WhileOptions",
           cond_subgraph_index=ic, body_subgraph_index=ib)
    at = o.op("MUL", [base.index, o.ints("time_axis", [0, 1, 0])], o.new("at_first_step", [3], s.INT32),
              "MulOptions")
    y_new = o.op("DYNAMIC_UPDATE_SLICE", [y.index, inner_out[-1].index, at.index], o.new("y_new", y.dims))
    c_new = o.op("ADD", [ci.index, o.ints("one", 1)], o.new("next_chunk", [], s.INT32), "AddOptions")
    after = [v.index for v in inner_out[3:-1]]         # the states, [the mask chunk, out]
    if mv:
        after[-2] = vals[3 + len(states)].index         # the whole mask, passed on
    o.g.outputs = [c_new.index, n_chunks.index, xs.index] + after + [y_new.index, total.index]
    e.counts["WHILE"] = e.counts.get("WHILE", 0) + 1
    e.g.op("WHILE", [v.index for v in outer_in], [v.index for v in outs], "WhileOptions",
           cond_subgraph_index=cond_index, body_subgraph_index=body_index)
    size = e.op("ADD", [e.op("MUL", [steps.index, e.ints(f"{name}time_axis", [0, 1, 0])],
                             e.new(f"{name}size_time", [3], s.INT32), "MulOptions").index,
                        e.ints(f"{name}size_rest", [-1, 0, -1])], e.new(f"{name}size", [3], s.INT32), "AddOptions")
    out = e.op("SLICE", [outs[-2].index, e.ints(f"{name}begin", [0, 0, 0]), size.index],
               e.new(f"{name}output", [B, xw.dims[1], S]))
    return out, ib
