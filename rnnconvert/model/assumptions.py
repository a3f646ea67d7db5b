"""What a reader assumed because the file does not say it, where the assumption can change the computed
function: `model.source["assumptions"]`, a list of `Assumption`.

An `Assumption` reads as its full sentence wherever a note is printed (it is a `str`), and carries
`kind` (one of KINDS), `assumed` (what was taken, short enough for the verdict line) and `hint` (what
settles it: the `--arch` YAML line, an option).  What a reader says about how it read a file without
changing the function (a module's name, a note on a layout) goes to `source["read_notes"]`, plain text.
`strict(model, path)` refuses a model read under any assumption (--strict).  A file rnnconvert wrote keeps
the assumptions made when it was converted as history (`earlier`): reading it assumes nothing.
"""
from __future__ import annotations

from ..errors import InputError

# architecture: which module or layer a tensor is; order: the modules' forward order; activation: a
# nonlinearity; layout: batch_first and the like; head: what the module after a recurrent one reads;
# default: a setting the file does not store, taken at its framework's default.
KINDS = ("architecture", "order", "activation", "layout", "head", "default")


class Assumption(str):
    """One assumption: the sentence printed as a note, plus kind, assumed and hint."""

    def __new__(cls, text: str, kind: str = "default", assumed: str = "", hint: str = "",
                settled_by: tuple = ()):
        self = super().__new__(cls, text)
        if kind not in KINDS:
            raise ValueError(f"assumption kind {kind!r}; known: {', '.join(KINDS)}")
        self.kind, self.assumed, self.hint, self.settled_by = kind, assumed or text, hint, tuple(settled_by)
        return self

    def to_dict(self, file: str | None = None) -> dict:
        return {"kind": self.kind, "assumed": self.assumed, "hint": self.hint, "text": str(self),
                **({"file": file} if file is not None else {})}


def of(source: dict) -> list[Assumption]:
    """The assumptions a reader recorded in `source` (a plain string there reads as an unclassified one:
    a reader not yet telling its kind never hides an assumption)."""
    return [a if isinstance(a, Assumption) else Assumption(str(a), "default", str(a), "")
            for a in source.get("assumptions", [])]


def said(source: dict) -> list[str]:
    """Everything the reader said: its assumptions, then its notes on the reading (printed as notes)."""
    return [*source.get("assumptions", []), *source.get("read_notes", [])]


def earlier(source: dict) -> dict:
    """`source` restored from a file rnnconvert wrote: the assumptions of that conversion become history
    (`assumed_when_converted`), since the file itself states everything it computes; the notes on reading
    the file it was converted from go."""
    out = {k: v for k, v in source.items() if k not in ("assumptions", "read_notes")}
    if source.get("assumptions"):
        out["assumed_when_converted"] = [str(a) for a in source["assumptions"]]
    return out


def strict(model, path) -> None:
    """--strict: InputError (exit 2) naming every assumption made reading `path` and what settles each."""
    items = of(model.source)
    if not items:
        return
    listed = "; ".join(f"{a.kind}: {a.assumed}" + (f" (settle it: {a.hint})" if a.hint else " (nothing settles it)")
                       for a in items)
    raise InputError(f"--strict: read under {len(items)} assumption{'s' if len(items) > 1 else ''} the file does "
                     f"not settle: {listed}", path=str(path))
