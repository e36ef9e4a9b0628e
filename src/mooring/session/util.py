"""Helpers shared by backends."""

from __future__ import annotations

import base64
import json

from mooring.errors import ConfigurationError
from mooring.session.records import SessionPage, SessionRecord


def encode_cursor(record: SessionRecord) -> str:
    raw = json.dumps([record.created_at, record.session_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, session_id = json.loads(base64.urlsafe_b64decode(padded))
        return str(created_at), str(session_id)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"invalid session listing cursor {cursor!r}") from exc


def sort_key(record: SessionRecord) -> tuple[str, str]:
    return (record.created_at, record.session_id)


def page_sessions(records: list[SessionRecord], *, cursor: str | None, limit: int) -> SessionPage:
    """Order newest first and cut one page after ``cursor`` (for backends that list everything)."""
    if limit < 1:
        raise ConfigurationError(f"limit must be at least 1, got {limit}")
    records = sorted(records, key=sort_key, reverse=True)
    if cursor is not None:
        after = decode_cursor(cursor)
        records = [r for r in records if sort_key(r) < after]
    page = records[:limit]
    next_cursor = encode_cursor(page[-1]) if len(records) > limit else None
    return SessionPage(sessions=page, next_cursor=next_cursor)
