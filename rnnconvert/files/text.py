"""YAML and JSON from a stranger, read with bounds: size, UTF-8, nesting depth, no YAML aliases (the rules
are in `safety.py`'s docstring)."""
from __future__ import annotations
import functools
import os
import re
import numpy as np
from ..errors import InputError
from ..errors import one_line
from .safety import _size


MAX_YAML_BYTES = 4 << 20          # a plan of some 40,000 jobs; PyYAML parses about 1 MiB a second


def read_yaml(path, what: str):
    """The YAML document in file `path`, parsed with `yaml.safe_load`; InputError naming the file (and the
    line) when it is missing, unreadable, over MAX_YAML_BYTES, not UTF-8, not YAML or nested too deeply.
    `what` names the file's role in messages: "plan", "architecture", "mapping", ..."""
    import yaml
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"no such {what} file", path=path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise InputError(f"cannot read the {what} file ({exc.strerror or exc})", path=path) from None
    if len(data) > MAX_YAML_BYTES:
        raise InputError(f"the {what} file is over {_size(MAX_YAML_BYTES)}, more than a YAML {what} needs; "
                         "is it the right file?", path=path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"the {what} file is not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line})",
                         path=path) from None
    try:
        loader = _no_alias_loader()(text)          # what yaml.safe_load does, with aliases refused
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except _AliasFound as exc:
        raise InputError(f"the {what} file uses a YAML {exc.args[0]} at line {exc.args[1]}; rnnconvert refuses "
                         "YAML anchors and aliases (they can expand a small file without bound): write the "
                         "values out", path=path) from None
    except yaml.reader.ReaderError as exc:          # a control character: no mark, a position
        line = text.count("\n", 0, exc.position) + 1
        raise InputError(f"the {what} file is not valid YAML at line {line} ({exc.reason} #x{exc.character:04x})",
                         path=path) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = one_line(getattr(exc, "problem", None) or exc)
        raise InputError(f"the {what} file is not valid YAML{where} ({problem})", path=path) from None
    except RecursionError:
        raise InputError(f"the {what} file nests lists or mappings too deeply to be read", path=path) from None


class _AliasFound(Exception):
    """args: (what was found, its line)."""


@functools.lru_cache(maxsize=1)
def _no_alias_loader():
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        """yaml.SafeLoader that stops at the first anchor (&a) or alias (*a), before anything expands."""

        def compose_node(self, parent, index):
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent):
                raise _AliasFound(f"alias '*{event.anchor}'", event.start_mark.line + 1)
            if getattr(event, "anchor", None) is not None:
                raise _AliasFound(f"anchor '&{event.anchor}'", event.start_mark.line + 1)
            return super().compose_node(parent, index)
    return NoAliasLoader


MAX_JSON_BYTES = 100_000_000      # the safetensors specification's header limit; larger JSON is no model's
MAX_JSON_DEPTH = 128              # Keras's deepest nested-model configs stay under 40
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)


def json_depth(text: str) -> int:
    """The deepest nesting of [ and { in JSON `text`, brackets inside strings not counted."""
    bare = _JSON_STRING.sub("", text).encode("utf-8", "surrogatepass")
    steps = np.frombuffer(bare, np.uint8)
    steps = steps[(steps == 0x5B) | (steps == 0x7B) | (steps == 0x5D) | (steps == 0x7D)]
    if not steps.size:
        return 0
    return int(np.cumsum(np.where((steps == 0x5B) | (steps == 0x7B), 1, -1), dtype=np.int64).max())


def read_json(data, path, what: str, limit: int = MAX_JSON_BYTES, not_json: str = "is not JSON"):
    """The JSON value in `data` (bytes or str) with its failures as one InputError line naming `path` and
    `what` (the JSON's role: "the safetensors header", "model.json", ...): over `limit` bytes, not UTF-8,
    nested deeper than MAX_JSON_DEPTH, or not JSON (`not_json` says so)."""
    import json
    path = None if path is None else str(path)
    if not isinstance(data, (str, bytes, bytearray, memoryview)):
        raise InputError(f"{what} is a {type(data).__name__}, expected JSON text", path=path)
    if len(data) > limit:
        raise InputError(f"{what} is {_size(len(data))}, over the {_size(limit)} rnnconvert reads", path=path)
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data)
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{what} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
                             path=path) from None
    depth = json_depth(data)
    if depth > MAX_JSON_DEPTH:
        raise InputError(f"{what} nests lists or objects {depth} deep, more than the {MAX_JSON_DEPTH} rnnconvert "
                         "reads", path=path)
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:     # JSONDecodeError, huge integers
        raise InputError(f"{what} {not_json} ({one_line(exc)})", path=path) from None
