"""Validation of the identifiers that become parts of storage paths and keys."""

from __future__ import annotations

import unicodedata

from mooring.errors import InvalidIdentifierError

MAX_ID_LENGTH = 256


def validate_id(value: object, kind: str = "session_id") -> str:
    """Return ``value`` if it is safe as a session/agent id, else raise InvalidIdentifierError.

    Refused: non-strings, empty strings, ``.`` and ``..``, path separators, NUL and other
    control characters, and anything longer than 256 characters.
    """
    if not isinstance(value, str):
        raise InvalidIdentifierError(f"{kind} must be a string, got {type(value).__name__}")
    if value == "":
        raise InvalidIdentifierError(f"{kind} must not be empty")
    if value in (".", ".."):
        raise InvalidIdentifierError(f"{kind} must not be {value!r}")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidIdentifierError(f"{kind} is {len(value)} characters long; the limit is {MAX_ID_LENGTH}")
    for ch in value:
        if ch in ("/", "\\"):
            raise InvalidIdentifierError(f"{kind} {value!r} contains a path separator {ch!r}")
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            raise InvalidIdentifierError(f"{kind} {value!r} contains a control character U+{ord(ch):04X}")
    return value
