"""Shared by the SQL backends: the threaded async base class, record decoding, paging, lease waits."""

from __future__ import annotations

import functools
import json
import logging
import uuid
from abc import abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Concatenate, Generic, TypeVar

from typing_extensions import ParamSpec

from mooring._json import BYTES_MARKER, loads
from mooring.errors import CorruptRecordError
from mooring.session._threaded import ThreadedRepository
from mooring.session.records import (
    AgentRecord,
    MessageRecord,
    MultiAgentRecord,
    SessionPage,
    SessionRecord,
    decode_cursor,
    encode_cursor,
)
from mooring.session.repository import Capability

_logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")
C = TypeVar("C")


def dump(data: Any) -> str:
    """Compact JSON text for a stored column."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def load(raw: Any, where: str) -> Any:
    """Decode a stored column: JSON text (SQLite) or an already decoded JSONB value (psycopg)."""
    if isinstance(raw, (str, bytes, bytearray)):
        try:
            return loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptRecordError(f"{where} is corrupt: not valid JSON ({exc})") from exc
    return raw


def session_where(store: str, session_id: str) -> str:
    return f"{store}: session {session_id!r}"


def agent_where(store: str, session_id: str, agent_id: str) -> str:
    return f"{store}: session {session_id!r}, agent {agent_id!r}"


def message_where(store: str, session_id: str, agent_id: str, message_id: int) -> str:
    return f"{store}: session {session_id!r}, agent {agent_id!r}, message {message_id}"


def multi_where(store: str, session_id: str, multi_agent_id: str) -> str:
    return f"{store}: session {session_id!r}, multi-agent {multi_agent_id!r}"


def decode_session(raw: Any, where: str) -> SessionRecord:
    return SessionRecord.from_dict(load(raw, where), where)


def session_page(store: str, rows: list[Any], limit: int) -> SessionPage:
    """One page of ``list_sessions`` from up to ``limit + 1`` keyset rows ``(session_id,
    created_at, data)``: an unreadable row is skipped with a warning (it must not hide the
    others), and the cursor follows the rows, not the records that decoded."""
    records: list[SessionRecord] = []
    for sid, _, data in rows[:limit]:
        try:
            records.append(decode_session(data, session_where(store, sid)))
        except CorruptRecordError as exc:
            _logger.warning("store=<%s> | skipped an unreadable session: %s", store, exc)
    last = rows[limit - 1] if len(rows) > limit else None
    next_cursor = encode_cursor(SessionRecord(session_id=last[0], created_at=last[1])) if last else None
    return SessionPage(sessions=records, next_cursor=next_cursor)


def decode_agent(raw: Any, version: int, where: str) -> AgentRecord:
    record = AgentRecord.from_dict(load(raw, where), where)
    record.version = int(version)  # the column is what compare-and-set checks
    return record


def decode_message(raw: Any, message_id: int, where: str) -> MessageRecord:
    # Most messages carry no bytes: when the text shows no marker, skip the decoding walk.
    has_bytes = not isinstance(raw, str) or BYTES_MARKER in raw
    return MessageRecord.from_dict(load(raw, where), where, expected_id=int(message_id), has_bytes=has_bytes)


def decode_messages(store: str, session_id: str, agent_id: str, rows: list[Any]) -> list[MessageRecord]:
    """Message records from ``(message_id, data)`` rows (callers pause the collector from the
    fetch on, see ``mooring._gc``). The location of each row is formatted only when one fails to
    decode: the rows are decoded again with their full names, so the error names the damaged one."""
    try:
        return [decode_message(data, mid, "") for mid, data in rows]
    except CorruptRecordError:
        pass
    return [decode_message(data, mid, message_where(store, session_id, agent_id, mid)) for mid, data in rows]


def decode_multi(raw: Any, version: int, where: str) -> MultiAgentRecord:
    record = MultiAgentRecord.from_dict(load(raw, where), where)
    record.version = int(version)
    return record


def stored_created_at(raw: Any, where: str, fallback: str) -> str:
    """``created_at`` of a stored record, or ``fallback`` when the stored copy is unreadable
    (rewriting a corrupt message is how it gets repaired)."""
    try:
        data = load(raw, where)
    except CorruptRecordError:
        return fallback
    value = data.get("created_at") if isinstance(data, dict) else None
    return str(value) if value else fallback


def page_after(cursor: str | None) -> tuple[str, str] | None:
    """The keyset position (created_at, session_id) a listing continues after."""
    return decode_cursor(cursor) if cursor is not None else None


def make_page(records: list[SessionRecord], limit: int) -> SessionPage:
    """One page from ``limit + 1`` rows fetched newest first (the extra row says "more")."""
    page = records[:limit]
    next_cursor = encode_cursor(page[-1]) if len(records) > limit else None
    return SessionPage(sessions=page, next_cursor=next_cursor)


def new_token() -> str:
    return uuid.uuid4().hex


S = TypeVar("S", bound="SQLRepository[Any]")


def lends_connection(method: Callable[Concatenate[S, Any, P], T]) -> Callable[Concatenate[S, P], T]:
    """Turn ``def _op(self, conn, ...)`` into the primitive ``_op(self, ...)``, which borrows a
    connection from :meth:`SQLRepository._connection` for the call."""

    @functools.wraps(method)
    def primitive(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        with self._connection() as conn:
            return method(self, conn, *args, **kwargs)

    return primitive


class SQLRepository(ThreadedRepository, Generic[C]):
    """The threaded contract for SQL drivers whose operations take a connection ``C``.

    A backend implements :meth:`_connection` (lend a connection for one operation, migrate
    the schema on first use, map driver errors) and the primitives of
    :class:`~mooring.session._threaded.ThreadedRepository`, each written as
    ``@lends_connection def _op(self, conn, ...)``. No connection is tied to an event loop,
    so the repository works from any loop.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset({"lease_expiry"})

    @abstractmethod
    def _connection(self) -> AbstractContextManager[C]:
        """A connection for one operation, returned (or discarded, if broken) afterwards."""

    @abstractmethod
    def _head(self, conn: C, session_id: str, agent_id: str) -> int:
        """The next free message id (one past the highest stored)."""

    @lends_connection
    def _message_head(self, conn: C, session_id: str, agent_id: str, hint: int | None) -> int:
        return self._head(conn, session_id, agent_id)
