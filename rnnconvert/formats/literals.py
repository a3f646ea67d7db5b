"""Text from a file, made safe for the code rnnconvert generates: the one place that does it.

A model's name, its layers', inputs' and outputs' names come from files made by strangers, and every
generator (C, the ES module, the NumPy script, the emitted PyTorch module, the Octave command line)
puts them into source text that verification then compiles or runs.  They reach that text only
through these functions, never by plain interpolation:

- `comment(s)`: the text for a comment or docstring in any of the languages (Python `#` and
  `\"\"\"...\"\"\"`, C and JS `/* */` and `//`, MATLAB `%`).  Printable ASCII stays, except `\\`, `"`,
  `` ` ``, `*`, `?`, `<` and `>`; those and every other character (newlines `\\n \\r \\v \\f`, NUL,
  U+0085, U+2028, U+2029, anything non-ASCII) become `\\xNN`, `\\uNNNN` or `\\UNNNNNNNN`, and a `/`
  before another `/` becomes `\\x2f`.  So the result never holds a line break, `*/`, `/*`, `//`,
  `\"\"\"`, a trigraph (`??/`), `</script>` or a backslash at its end, and reads the same in every
  language (a Python docstring shows the escapes decoded).
- `py_str(s)`, `js_str(s)`, `matlab_str(s)`: string literals, all ASCII.  JS escapes `<` and `>` too
  (`</script>`); MATLAB (Octave) spells characters outside printable ASCII as `char([...])` of their
  UTF-8 bytes, since its quoted strings have no escapes.
- `identifier(name, taken)`: a C/JS/Python/MATLAB identifier made of `name` (ASCII letters, digits
  and `_`; a leading digit gets `m_`; a keyword of any of those languages gets `_` after it; past 64
  characters a hash keeps it distinct), made unique against `taken` by `_2`, `_3`, ... in order.
"""
from __future__ import annotations

import hashlib
import json
import keyword
import re

_COMMENT_UNSAFE = set('\\"`*?<>')
_IDENT_CHARS = re.compile(r"[^0-9A-Za-z_]")
MAX_IDENTIFIER = 64

RESERVED = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset("""
auto break case char const continue default do double else enum extern float for goto if inline int long
register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while
_Bool _Complex _Imaginary bool true false NULL
await catch class debugger delete export extends finally function import in instanceof let new null super
this throw try typeof var with yield undefined NaN Infinity arguments eval
end elseif function global parfor persistent otherwise spmd classdef methods properties events
""".split())


def _escape(ch: str) -> str:
    n = ord(ch)
    if n < 0x100:
        return f"\\x{n:02x}"
    if n < 0x10000:
        return f"\\u{n:04x}"
    return f"\\U{n:08x}"


def comment(s) -> str:
    """`s` as text inside a comment or docstring of Python, C, JS or MATLAB (see the module docstring)."""
    s = str(s)
    out = []
    for k, ch in enumerate(s):
        if " " <= ch <= "~" and ch not in _COMMENT_UNSAFE and not (ch == "/" and s[k + 1:k + 2] == "/"):
            out.append(ch)
        else:
            out.append(_escape(ch))
    return "".join(out)


def py_str(s) -> str:
    """A Python string literal of `s`, ASCII only."""
    return ascii(str(s))


def js_str(s) -> str:
    """A JavaScript string literal of `s`: ASCII only, no line terminator, no `</script>`."""
    return json.dumps(str(s), ensure_ascii=True).replace("<", "\\u003c").replace(">", "\\u003e")


def matlab_str(s) -> str:
    """A MATLAB/Octave character-vector expression equal to `s` (as UTF-8 bytes, Octave's strings)."""
    parts, run = [], []
    for ch in str(s):
        if " " <= ch <= "~":
            run.append("''" if ch == "'" else ch)
            continue
        if run:
            parts.append("'" + "".join(run) + "'")
            run = []
        parts.append("char([" + " ".join(str(b) for b in ch.encode("utf-8", "surrogatepass")) + "])")
    if run or not parts:
        parts.append("'" + "".join(run) + "'")
    return parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"


def identifier(name, taken=None, fallback: str = "model") -> str:
    """A safe identifier made of `name`, unique against `taken` (a set it is added to, if given)."""
    s = _IDENT_CHARS.sub("_", str(name or "")).strip("_") or fallback
    if s[0].isdigit():
        s = f"m_{s}"
    if len(s) > MAX_IDENTIFIER:
        s = s[:MAX_IDENTIFIER - 9] + "_" + hashlib.sha256(str(name).encode("utf-8", "surrogatepass")).hexdigest()[:8]
    if s in RESERVED:
        s += "_"
    if taken is not None:
        base, n = s, 2
        while s in taken:
            s, n = f"{base}_{n}", n + 1
        taken.add(s)
    return s
