"""The meaning the ONNX reader gives a tensor computed from the graph input: a `Flow`.

Axes are labelled 'A0'/'A1' (the input's first two axes; one of them turns out to be time at the
first recurrent node), 'D' (the directions of a recurrent node), 'F' (features) or '1' (a kept axis
of size 1).  A *raw* flow still holds recurrent outputs (`Piece`s: which node, which direction,
which time step); it becomes a canonical layer when something that is not glue consumes it.  A
*stack* flow is the output of the canonical layers found so far.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from ._graph import ONE, Size


@dataclass(frozen=True)
class Piece:
    parts: tuple              # ((node index into Walker.recs, direction index, when), ...)
    merge: str = "concat"     # sum | mul | ave when two directions are combined elementwise
    # when: seq (a time axis) | last (input step T-1) | first (input step 0) | state (Y_h)


@dataclass(frozen=True)
class Flow:
    axes: tuple
    stack: tuple = ()         # canonical layers computing this tensor (stack flows)
    entries: tuple = ()       # Pieces along the 'D' axis
    pieces: tuple = ()        # Pieces along 'F' (raw flows without a 'D' axis)
    width: int = 0            # size of 'F'
    rev: bool = False         # the time axis runs in the processing order of a reversed pass
    tail: str = ""            # "matmul": a Dense without bias yet
    expr: object = None       # pending elementwise expression over the stack output
    expr_name: str = ""
    pad: tuple = ()           # (left, right) zero padding in time still to be taken by a Conv
    steps: int | None = None  # the time axis's fixed size after a TimeWindow (None: the input's)

    @property
    def raw(self) -> bool:
        return bool(self.entries or self.pieces)


def collapse(f: Flow) -> Flow:
    """Move the entries of the 'D' axis onto the feature axis as pieces (concatenation order)."""
    axes = tuple(a for a in f.axes if a != "D")
    return replace(f, axes=axes, pieces=f.entries, entries=(), width=f.width * len(f.entries))


def prod(sizes) -> Size:
    out = ONE
    for s in sizes:
        out = out * s
    return out


def axis_name(kind: str) -> str:
    names = {"A0": "first input", "A1": "second input", "D": "directions", "F": "feature", "1": "size-1"}
    return names.get(kind, "merged batch*time" if "*" in kind else kind)
