"""A pickle machine of our own for torch.save's pickles: the globals torch.load(weights_only=True) allows, no other.

It runs the protocol-2 opcodes torch's weights-only unpickler runs (torch/_weights_only_unpickler.py) and
turns each allowed global into a stand-in of ours (`globals_table.py`): a tensor becomes a `TensorRef`
(storage, offset, shape, strides, dtype) whose bytes are read later and only if needed, a dtype a `Dtype`.
It never imports a module or calls anything the file names: any other global (`os.system`,
`torch.nn.modules.rnn.LSTM`, ...) raises `Foreign` naming it, damaged or unexpected content raises
`Damaged`.  Reading is bounded by the pickle's bytes; nested tuples (the only hashed containers) are
refused past MAX_TUPLE_DEPTH, so a dict key cannot make hashing recurse without end.

    Machine(data, persistent_load).load(pos) -> (object, end)
"""
from __future__ import annotations

import struct
from collections import Counter, OrderedDict

from .globals_table import ALLOWED, Damaged, Foreign, Reducer

MAX_TUPLE_DEPTH = 64
_MAX_MARKS = 100_000         # MARKs open at once: no torch.save pickle nests a tenth as deep
_RENAMED = {"__builtin__": "builtins", "copy_reg": "copyreg"}        # Python 2 pickles' module names


class Machine:
    """One pickle read from `data` (bytes or an mmap) starting at a byte position.
    `persistent_load(pid)` answers BINPERSID (the storages); `encoding` decodes SHORT_BINSTRING."""

    def __init__(self, data, persistent_load, encoding: str = "utf-8"):
        self.data, self.persistent_load, self.encoding = data, persistent_load, encoding
        self.memo: dict = {}
        self.depth: dict = {}            # id(tuple) -> nesting depth, for every tuple this machine made

    # ------------------------------------------------------------------------ reading bytes

    def _take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise Damaged(f"the pickle ends inside an opcode at byte {self.pos} (needs {n} more bytes)")
        out = bytes(self.data[self.pos:end])
        self.pos = end
        return out

    def _line(self) -> str:
        end = self.data.find(b"\n", self.pos, self.pos + 4096)       # bytes and mmap both find
        if end < self.pos:
            raise Damaged(f"a GLOBAL name at byte {self.pos} does not end within 4096 bytes")
        text = bytes(self.data[self.pos:end])
        self.pos = end + 1
        try:
            return text.decode("utf-8")
        except UnicodeDecodeError:
            raise Damaged(f"a GLOBAL name at byte {self.pos} is not UTF-8") from None

    # ------------------------------------------------------------------------ the machine

    def load(self, pos: int = 0):
        """(the object, the position after its STOP)."""
        self.pos, self.stack, self.marks = pos, [], []
        ops = _OPS
        while True:
            if self.pos >= len(self.data):
                raise Damaged(f"the pickle ends at byte {self.pos} without a STOP opcode")
            code = self.data[self.pos]
            self.pos += 1
            op = ops.get(code)
            if op is None:
                raise Damaged(f"pickle opcode 0x{code:02x} at byte {self.pos - 1} is not one torch's "
                              "weights-only unpickler runs")
            if op is _stop:                     # the top of the stack, as torch's unpickler returns it
                if not self.stack:
                    raise Damaged(f"the pickle's STOP at byte {self.pos - 1} finds its stack empty")
                return self.stack[-1], self.pos
            try:
                op(self)
            except IndexError:
                raise Damaged(f"opcode 0x{code:02x} at byte {self.pos - 1} finds too few objects on the "
                              "pickle's stack") from None
            except (TypeError, ValueError, KeyError, OverflowError, RecursionError, MemoryError) as exc:
                raise Damaged(f"opcode 0x{code:02x} near byte {self.pos - 1}: {type(exc).__name__}: "
                              f"{str(exc)[:200]}") from None

    def push(self, value) -> None:
        self.stack.append(value)

    def pop_mark(self) -> list:
        if not self.marks:
            raise Damaged(f"an opcode near byte {self.pos - 1} needs a MARK the pickle never set")
        items, self.stack = self.stack, self.marks.pop()
        return items

    def tuple_of(self, items) -> tuple:
        t = tuple(items)
        depth = 1 + max((self.depth.get(id(x), 1) for x in t if type(x) is tuple), default=0)
        if depth > MAX_TUPLE_DEPTH:
            raise Damaged(f"tuples nested more than {MAX_TUPLE_DEPTH} deep near byte {self.pos - 1}")
        self.depth[id(t)] = depth
        return t


# ---------------------------------------------------------------------------- opcodes

def _global(m: Machine) -> None:
    module, name = m._line(), m._line()
    module = _RENAMED.get(module, module)
    full = f"{module}.{name}"
    if full not in ALLOWED:
        raise Foreign(f"global '{full}'")
    m.push(ALLOWED[full])


def _reduce(m: Machine) -> None:
    args = m.stack.pop()
    func = m.stack[-1]
    if not isinstance(func, Reducer) or type(args) is not tuple:
        raise Damaged(f"REDUCE near byte {m.pos - 1} calls {type(func).__name__}, not a global torch allows")
    m.stack[-1] = func(*args)


def _newobj(m: Machine) -> None:
    args = m.stack.pop()
    cls = m.stack.pop()
    if not isinstance(cls, Reducer) or not cls.newobj or type(args) is not tuple:
        raise Damaged(f"NEWOBJ near byte {m.pos - 1} makes a {type(cls).__name__}, not a class torch allows")
    m.push(cls(*args))


def _build(m: Machine) -> None:
    state = m.stack.pop()
    inst = m.stack[-1]
    setter = getattr(inst, "set_state", None)
    if type(inst) in (OrderedDict, Counter):
        if not isinstance(state, dict) or not all(type(k) is str for k in state):
            raise Damaged(f"BUILD near byte {m.pos - 1} gives a dict attributes that are not named by strings")
        inst.__dict__.update(state)
    elif setter is not None:
        setter(state)
    else:
        raise Damaged(f"BUILD near byte {m.pos - 1} sets the state of a {type(inst).__name__}")


def _append(m: Machine) -> None:
    item = m.stack.pop()
    if type(m.stack[-1]) is not list:
        raise Damaged(f"APPEND near byte {m.pos - 1} appends to a {type(m.stack[-1]).__name__}, not a list")
    m.stack[-1].append(item)


def _appends(m: Machine) -> None:
    items = m.pop_mark()
    if type(m.stack[-1]) is not list:
        raise Damaged(f"APPENDS near byte {m.pos - 1} extends a {type(m.stack[-1]).__name__}, not a list")
    m.stack[-1].extend(items)


def _setitem(m: Machine) -> None:
    v, k = m.stack.pop(), m.stack.pop()
    _check_dict(m, "SETITEM")[k] = v


def _setitems(m: Machine) -> None:
    items = m.pop_mark()
    target = _check_dict(m, "SETITEMS")
    if len(items) % 2:
        raise Damaged(f"SETITEMS near byte {m.pos - 1} has a key without a value")
    for i in range(0, len(items), 2):
        target[items[i]] = items[i + 1]


def _check_dict(m: Machine, opcode: str):
    if type(m.stack[-1]) not in (dict, OrderedDict, Counter):
        raise Damaged(f"{opcode} near byte {m.pos - 1} sets an item of a {type(m.stack[-1]).__name__}, not a dict")
    return m.stack[-1]


def _mark(m: Machine) -> None:
    if len(m.marks) >= _MAX_MARKS:
        raise Damaged(f"more than {_MAX_MARKS} MARKs open at once near byte {m.pos - 1}")
    m.marks.append(m.stack)
    m.stack = []


def _tuple(m: Machine) -> None:
    items = m.pop_mark()
    m.push(m.tuple_of(items))


def _tuple_n(n: int):
    def op(m: Machine) -> None:
        if len(m.stack) < n:
            raise IndexError
        items = m.stack[len(m.stack) - n:]
        del m.stack[len(m.stack) - n:]
        m.push(m.tuple_of(items))
    return op


def _const(value_factory):
    return lambda m: m.push(value_factory())


def _binint(m: Machine) -> None:
    m.push(struct.unpack("<i", m._take(4))[0])


def _binint1(m: Machine) -> None:
    m.push(m._take(1)[0])


def _binint2(m: Machine) -> None:
    m.push(struct.unpack("<H", m._take(2))[0])


def _binfloat(m: Machine) -> None:
    m.push(struct.unpack(">d", m._take(8))[0])


def _long1(m: Machine) -> None:
    n = m._take(1)[0]
    m.push(int.from_bytes(m._take(n), "little", signed=True))


def _binunicode(m: Machine) -> None:
    n = struct.unpack("<I", m._take(4))[0]
    m.push(str(m._take(n), "utf-8", "surrogatepass"))


def _short_binstring(m: Machine) -> None:
    raw = m._take(m._take(1)[0])
    m.push(raw.decode(m.encoding, "strict") if m.encoding != "bytes" else raw)


def _binpersid(m: Machine) -> None:
    pid = m.stack.pop()
    if type(pid) is not tuple and type(pid) is not int:
        raise Damaged(f"a persistent id near byte {m.pos - 1} is a {type(pid).__name__}, not a tuple")
    m.push(m.persistent_load(pid))


def _get(width: int):
    def op(m: Machine) -> None:
        idx = m._take(1)[0] if width == 1 else struct.unpack("<I", m._take(4))[0]
        if idx not in m.memo:
            raise Damaged(f"memo entry {idx} read near byte {m.pos - 1} was never stored")
        m.push(m.memo[idx])
    return op


def _put(width: int):
    def op(m: Machine) -> None:
        idx = m._take(1)[0] if width == 1 else struct.unpack("<I", m._take(4))[0]
        m.memo[idx] = m.stack[-1]
    return op


def _proto(m: Machine) -> None:
    m._take(1)


def _stop(m: Machine) -> None:     # handled in load(); here to be found in the table
    raise AssertionError


_OPS = {
    ord("c"): _global, ord("R"): _reduce, 0x81: _newobj, ord("b"): _build,
    ord("a"): _append, ord("e"): _appends, ord("s"): _setitem, ord("u"): _setitems,
    ord("("): _mark, ord("t"): _tuple, 0x85: _tuple_n(1), 0x86: _tuple_n(2), 0x87: _tuple_n(3),
    ord("N"): _const(lambda: None), 0x89: _const(lambda: False), 0x88: _const(lambda: True),
    ord(")"): _const(tuple), ord("]"): _const(list), ord("}"): _const(dict), 0x8f: _const(set),
    ord("J"): _binint, ord("K"): _binint1, ord("M"): _binint2, ord("G"): _binfloat, 0x8a: _long1,
    ord("X"): _binunicode, ord("U"): _short_binstring, ord("Q"): _binpersid,
    ord("h"): _get(1), ord("j"): _get(4), ord("q"): _put(1), ord("r"): _put(4),
    0x80: _proto, ord("."): _stop,
}
