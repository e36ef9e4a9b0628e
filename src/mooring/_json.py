"""JSON helpers shared by storage backends: bytes encoding in the Strands format, and the
parser stored records are read with."""

from __future__ import annotations

import base64
import json
from types import ModuleType
from typing import Any

BYTES_MARKER = "__bytes_encoded__"

_orjson: ModuleType | None = None  # imported on the first read, not by `import mooring`


def loads(raw: str | bytes | bytearray | memoryview) -> Any:
    """Parse stored JSON text: orjson (three times the speed of ``json.loads`` on message
    records), and ``json.loads`` for what orjson refuses and Python's writer may have stored
    (``NaN`` and ``Infinity``, integers beyond 64 bits, lone surrogate escapes). Raises
    ``json.JSONDecodeError`` (or ``UnicodeDecodeError``) only when ``json.loads`` refuses too."""
    global _orjson
    if _orjson is None:
        import orjson

        _orjson = orjson
    try:
        return _orjson.loads(raw)
    except _orjson.JSONDecodeError:
        return json.loads(bytes(raw) if isinstance(raw, memoryview) else raw)


def encode_bytes(value: Any) -> Any:
    """Replace every ``bytes`` value with ``{"__bytes_encoded__": true, "data": base64}``."""
    if isinstance(value, (bytes, bytearray)):
        return {BYTES_MARKER: True, "data": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dict):
        return {k: encode_bytes(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_bytes(v) for v in value]
    return value


def decode_bytes(value: Any) -> Any:
    """Inverse of :func:`encode_bytes`."""
    if isinstance(value, dict):
        if value.get(BYTES_MARKER) is True and "data" in value:
            return base64.b64decode(value["data"])
        return {k: decode_bytes(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_bytes(v) for v in value]
    return value


#: Levels of nesting allowed in one message or state value: far below what Python's json,
#: ``copy.deepcopy`` and the other backends' JSON parsers recurse through (about 1,000), and
#: below serde_json's default of 128, so every reader of a stored session can parse it.
MAX_DEPTH = 100

_SCALARS = (str, int, float, bool, type(None), bytes, bytearray)
_KEYS = (str, int, float, bool, type(None))  # what json.dumps accepts as an object key


def find_unstorable(value: Any, *, max_depth: int | None = MAX_DEPTH, allow_nul: bool = True) -> str | None:
    """Why ``value`` cannot be stored as JSON by every backend, or None when it can.

    Refused: nesting deeper than ``max_depth`` (a container at the top is level 1), strings
    (values or keys) holding a lone surrogate, which UTF-8 cannot encode, non-finite floats,
    and values JSON has no form for. ``allow_nul=False`` also refuses U+0000 (for PostgreSQL's
    JSONB). The answer names where, as a path such as ``content[0]['text']``. The walk is
    iterative, so no depth of nesting can exhaust the stack here.
    """
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, (dict, list, tuple)):
            if max_depth is not None and depth >= max_depth:
                return f"it nests deeper than {max_depth} levels (at {_short(path) or 'the top'})"
            if isinstance(item, dict):
                for key, child in item.items():
                    where = f"{path}[{key!r}]"
                    if not isinstance(key, _KEYS):
                        return (
                            f"the key {key!r} at {path or 'the top'} is a {type(key).__name__}, which JSON cannot hold"
                        )
                    if isinstance(key, str) and (problem := _string_problem(key, allow_nul)) is not None:
                        return f"the key {where} {problem}"
                    stack.append((child, where, depth + 1))
            else:
                stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))
        elif isinstance(item, str):
            if (problem := _string_problem(item, allow_nul)) is not None:
                return f"the string at {path or 'the top'} {problem}"
        elif isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                return f"the number at {path or 'the top'} is {item!r}, which JSON cannot hold"
        elif not isinstance(item, _SCALARS):
            return f"the value at {path or 'the top'} is a {type(item).__name__}, which JSON cannot hold"
    return None


def _string_problem(text: str, allow_nul: bool) -> str | None:
    if text.isascii():
        if not allow_nul and "\x00" in text:
            return "holds the NUL character U+0000"
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"holds a lone surrogate U+{ord(text[exc.start]):04X}, which UTF-8 cannot encode"
    if not allow_nul and "\x00" in text:
        return "holds the NUL character U+0000"
    return None


def _short(path: str) -> str:
    return path if len(path) <= 80 else path[:80] + "..."
