"""Validation of the identifiers that become parts of storage paths and keys."""

from __future__ import annotations

import unicodedata

from mooring.errors import InvalidIdentifierError

#: Bytes in one path component (NAME_MAX on Linux and macOS; S3 keys allow far more).
NAME_MAX = 255

# The longest name each kind of id becomes, around the id itself. The Strands tree names
# directories session_<id>, agent_<id> and multi_agent_<id>; the file backend adds the lock
# files .mooring-locks/session_<id>/agent_<id>.lease, agent_<id>.record and
# multi_agent_<id>.record. Every backend applies the same limit, so a session can be copied
# from any backend to any other.
_LONGEST_NAME = {
    "session_id": ("session_", ""),
    "agent_id": ("agent_", ".record"),
    "multi_agent_id": ("multi_agent_", ".record"),
}

#: The longest id of each kind, in UTF-8 bytes: 247 for sessions, 242 for agents, 236 for
#: multi-agent orchestrators.
MAX_ID_BYTES = {kind: NAME_MAX - len(prefix) - len(suffix) for kind, (prefix, suffix) in _LONGEST_NAME.items()}


def validate_id(value: object, kind: str = "session_id") -> str:
    """Return ``value`` if it is safe as a session/agent id, else raise InvalidIdentifierError.

    Refused: non-strings, empty strings, ``.`` and ``..``, path separators, NUL and other
    control characters, lone surrogates, and ids whose longest stored name would not fit in
    255 bytes of UTF-8 (see :data:`MAX_ID_BYTES`). Nothing is read or written before the check.
    """
    if not isinstance(value, str):
        raise InvalidIdentifierError(f"{kind} must be a string, got {type(value).__name__}")
    if value == "":
        raise InvalidIdentifierError(f"{kind} must not be empty")
    if value in (".", ".."):
        raise InvalidIdentifierError(f"{kind} must not be {value!r}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidIdentifierError(
            f"{kind} {value!r} contains a lone surrogate U+{ord(value[exc.start]):04X}, which UTF-8 cannot encode"
        ) from None
    prefix, suffix = _LONGEST_NAME.get(kind, _LONGEST_NAME["multi_agent_id"])
    limit = NAME_MAX - len(prefix) - len(suffix)
    if size > limit:
        raise InvalidIdentifierError(
            f"{kind} is {size} bytes long in UTF-8; the limit is {limit} bytes, so that the longest name "
            f"stored for it ({prefix}<{kind}>{suffix}) fits in {NAME_MAX} bytes"
        )
    for ch in value:
        if ch in ("/", "\\"):
            raise InvalidIdentifierError(f"{kind} {value!r} contains a path separator {ch!r}")
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            raise InvalidIdentifierError(f"{kind} {value!r} contains a control character U+{ord(ch):04X}")
    return value
