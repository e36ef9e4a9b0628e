"""JSON helpers shared by storage backends: bytes encoding in the Strands format."""

from __future__ import annotations

import base64
from typing import Any

BYTES_MARKER = "__bytes_encoded__"


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
