"""The SQLite backend: every session in one database file, safe for many processes.

The database runs in WAL mode with a busy timeout, so readers never block the writer and
processes wait for each other instead of failing. Each message is one row keyed by
``(session_id, agent_id, message_id)``; an append checks the head and inserts the whole
batch in one ``BEGIN IMMEDIATE`` transaction, which is the conditional append. Agent and
multi-agent records are compare-and-set on a ``version`` column. Invocation leases are rows
with a token and an expiry (capability ``"lease_expiry"``): an expired lease, or one whose
holder process on this machine has died, can be taken over, and renew/release only touch the
row while it still carries the holder's token.

A database that cannot be written (read-only media, a file or directory without write
permission, or ``read_only=True`` / ``?mode=ro``) is opened read-only: every read works and
every write raises :class:`ReadOnlyStoreError`, naming the file.

Operations use the stdlib ``sqlite3`` driver from mooring's I/O worker threads;
connections are pooled per repository and handed to one thread at a time, so the
repository works from any event loop and any thread.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from typing_extensions import Self

from mooring._gc import PAUSE_FROM, collection_paused
from mooring._ids import validate_id
from mooring.errors import (
    ConfigurationError,
    ConflictError,
    LeaseLostError,
    SessionNotFoundError,
)
from mooring.session._threaded import Operation
from mooring.session.backends.sql import base as _sql
from mooring.session.backends.sql._sqlite_pool import Durability, SQLiteConnections
from mooring.session.manager import RepositorySessionManager
from mooring.session.records import (
    AgentRecord,
    MessageRecord,
    MultiAgentRecord,
    SessionPage,
    SessionRecord,
    check_append,
    now_iso,
    version_conflict,
)
from mooring.session.repository import Lease
from mooring.session.url import default_storage_dir, query_options

logger = logging.getLogger(__name__)


_HOST = socket.gethostname()
_INLINE_READS: frozenset[Operation] = frozenset({"read_session", "read_agent", "message_head", "read_multi_agent"})
_SMALL_READ = 8  # message reads up to this many records run in place on a warm pool


def _holder_is_dead(token: str) -> bool:
    host, _, rest = token.partition(":")
    pid_text = rest.partition(":")[0]
    if host != _HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, owned by another user
    return False


def _database_path(url: str) -> str:
    """The database path a ``sqlite:`` URL names, the SQLAlchemy way.

    After ``sqlite://`` (an empty host) comes ``/`` and then the path as written: one more
    slash (``sqlite:////abs.db``) makes it absolute, none (``sqlite:///rel.db``) leaves it
    relative to the working directory.
    """
    parts = urlsplit(url)
    if parts.netloc:
        raise ConfigurationError(
            f"sqlite URL {url!r} names a host; use sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    path = unquote(parts.path)
    if url[len(parts.scheme) + 1 :].startswith("//"):
        path = path[1:]  # the "/" that ends the empty authority is not part of the path
    if not path:
        raise ConfigurationError(
            f"sqlite URL {url!r} names no database file (sqlite:///relative.db or sqlite:////absolute/path.db)"
        )
    return path


def _url_options(url: str) -> dict[str, Any]:
    options: dict[str, Any] = query_options(url)
    if "busy_timeout" in options:
        options["busy_timeout"] = float(options["busy_timeout"])
    if "mode" in options:
        mode = options.pop("mode")
        if mode not in ("ro", "rw"):
            raise ConfigurationError(f"sqlite URL {url!r}: mode must be 'ro' or 'rw', got {mode!r}")
        options["read_only"] = mode == "ro"
    return options


class SQLiteSessionRepository(_sql.SQLRepository[sqlite3.Connection]):
    """Sessions in one SQLite database file (WAL mode).

    Example::

        repo = SQLiteSessionRepository("/var/lib/app/sessions.db")
        manager = RepositorySessionManager("user-42", repo)

    ``busy_timeout`` is how long (seconds) an operation waits for another process's write
    transaction. ``durability="fsync"`` (the default, ``synchronous=FULL``) makes every
    acknowledged write survive a power loss; ``"none"`` (``synchronous=NORMAL``) may lose
    the last transactions on power loss but never corrupts the database.

    ``read_only=True`` (URL ``?mode=ro``) opens the database read-only and refuses writes
    with :class:`ReadOnlyStoreError`. Without it, a database file that exists but cannot be
    opened for writing (read-only media, no write permission on the file or its directory)
    is served read-only the same way, so inspecting it needs no option; a new file is still
    created as before.
    """

    @classmethod
    def from_url(cls, url: str) -> Self:
        """SQLAlchemy's form: ``sqlite:///rel.db`` is relative to the working directory and
        ``sqlite:////abs/path.db`` absolute (``sqlite:rel.db`` and ``sqlite:/abs.db``, without
        the ``//``, also work); ``?busy_timeout=5&durability=none`` set the options;
        ``?mode=ro`` opens it read-only."""
        return cls(_database_path(url), **_url_options(url))

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 30.0,
        durability: Durability = "fsync",
        read_only: bool = False,
    ) -> None:
        if durability not in ("fsync", "none"):
            raise ConfigurationError(f"durability must be 'fsync' or 'none', got {durability!r}")
        raw = os.fspath(path)
        if not raw or raw == ":memory:" or raw.startswith("file:"):
            raise ConfigurationError(f"SQLiteSessionRepository needs a database file path, got {raw!r}")
        self.path = Path(raw).expanduser()
        self.busy_timeout = float(busy_timeout)
        self.durability: Durability = durability
        self._db = SQLiteConnections(
            self.path, busy_timeout=self.busy_timeout, durability=durability, read_only=read_only
        )

    @property
    def read_only(self) -> bool:
        """True when the repository refuses writes (asked for, or the file is not writable)."""
        return self._db.read_only_reason is not None

    def describe(self) -> str:
        return f"sqlite:{self.path}"

    inline_when_alone: ClassVar[bool] = True  # a local file: see ThreadedRepository

    def _runs_inline(self, op: Operation, size: int) -> bool:
        # A read in WAL mode never waits for a writer, and on a warm pool (an idle connection,
        # schema checked) one indexed lookup costs less than a hop to a worker thread and back.
        # Writes wait for the write lock (up to busy_timeout) and may fsync: never inline.
        if op in _INLINE_READS or (op == "read_messages" and 0 <= size <= _SMALL_READ):
            return self._db.warm()
        return False

    # -- plumbing -----------------------------------------------------------------------------

    def _connection(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._db.connection()

    def _write(self, conn: sqlite3.Connection) -> AbstractContextManager[sqlite3.Connection]:
        return self._db.write(conn)

    @staticmethod
    def _session_exists(conn: sqlite3.Connection, session_id: str) -> bool:
        row = conn.execute("SELECT 1 FROM mooring_sessions WHERE session_id = ?", (session_id,)).fetchone()
        return row is not None

    def _require_session(self, conn: sqlite3.Connection, session_id: str) -> None:
        if not self._session_exists(conn, session_id):
            raise SessionNotFoundError(f"session {session_id!r} does not exist in {self.describe()}")

    def _require_agent(self, conn: sqlite3.Connection, session_id: str, agent_id: str) -> None:
        self._require_session(conn, session_id)
        row = conn.execute(
            "SELECT 1 FROM mooring_agents WHERE session_id = ? AND agent_id = ?", (session_id, agent_id)
        ).fetchone()
        if row is None:
            raise SessionNotFoundError(f"agent {agent_id!r} does not exist in session {session_id!r}")

    def _head(self, conn: sqlite3.Connection, session_id: str, agent_id: str) -> int:
        # MAX over the primary-key prefix: an index seek, not a scan.
        row = conn.execute(
            "SELECT COALESCE(MAX(message_id) + 1, 0) FROM mooring_messages WHERE session_id = ? AND agent_id = ?",
            (session_id, agent_id),
        ).fetchone()
        return int(row[0])

    # -- sessions -----------------------------------------------------------------------------

    @_sql.lends_connection
    def _create_session(self, conn: sqlite3.Connection, session: SessionRecord) -> SessionRecord:
        if self._db.read_only_reason is not None:
            raise self._db.refusal()
        cursor = conn.execute(
            "INSERT INTO mooring_sessions (session_id, created_at, data) VALUES (?, ?, ?) "
            "ON CONFLICT (session_id) DO NOTHING",
            (session.session_id, session.created_at, _sql.dump(session.to_dict())),
        )
        if cursor.rowcount != 1:
            raise ConflictError(f"session {session.session_id!r} already exists in {self.describe()}")
        return session

    @_sql.lends_connection
    def _read_session(self, conn: sqlite3.Connection, session_id: str) -> SessionRecord | None:
        row = conn.execute("SELECT data FROM mooring_sessions WHERE session_id = ?", (session_id,)).fetchone()
        return None if row is None else _sql.decode_session(row[0], _sql.session_where(self.describe(), session_id))

    @_sql.lends_connection
    def _list_sessions(self, conn: sqlite3.Connection, cursor: str | None, limit: int) -> SessionPage:
        after = _sql.page_after(cursor)
        if after is None:
            rows = conn.execute(
                "SELECT session_id, created_at, data FROM mooring_sessions "
                "ORDER BY created_at DESC, session_id DESC LIMIT ?",
                (limit + 1,),
            ).fetchall()
        else:
            rows = conn.execute(
                "SELECT session_id, created_at, data FROM mooring_sessions WHERE (created_at, session_id) < (?, ?) "
                "ORDER BY created_at DESC, session_id DESC LIMIT ?",
                (after[0], after[1], limit + 1),
            ).fetchall()
        return _sql.session_page(self.describe(), rows, limit)

    @_sql.lends_connection
    def _delete_session(self, conn: sqlite3.Connection, session_id: str) -> bool:
        with self._write(conn):
            found = conn.execute("DELETE FROM mooring_sessions WHERE session_id = ?", (session_id,)).rowcount > 0
            for table in ("mooring_agents", "mooring_messages", "mooring_multi_agents", "mooring_leases"):
                conn.execute(f"DELETE FROM {table} WHERE session_id = ?", (session_id,))
        logger.debug("session_id=<%s> | deleted=<%s>", session_id, found)
        return found

    # -- agents -------------------------------------------------------------------------------

    @_sql.lends_connection
    def _list_agents(self, conn: sqlite3.Connection, session_id: str) -> list[str]:
        conn.execute("BEGIN")  # one snapshot for both reads
        self._require_session(conn, session_id)
        rows = conn.execute("SELECT agent_id FROM mooring_agents WHERE session_id = ?", (session_id,)).fetchall()
        conn.execute("COMMIT")
        return sorted(str(r[0]) for r in rows)

    @_sql.lends_connection
    def _list_multi_agents(self, conn: sqlite3.Connection, session_id: str) -> list[str]:
        conn.execute("BEGIN")  # one snapshot for both reads
        self._require_session(conn, session_id)
        rows = conn.execute(
            "SELECT multi_agent_id FROM mooring_multi_agents WHERE session_id = ?", (session_id,)
        ).fetchall()
        conn.execute("COMMIT")
        return sorted(str(r[0]) for r in rows)

    @_sql.lends_connection
    def _create_agent(self, conn: sqlite3.Connection, session_id: str, agent: AgentRecord) -> AgentRecord:
        stored = agent.copy()
        stored.version = 1
        with self._write(conn):
            self._require_session(conn, session_id)
            cursor = conn.execute(
                "INSERT INTO mooring_agents (session_id, agent_id, version, data) VALUES (?, ?, 1, ?) "
                "ON CONFLICT (session_id, agent_id) DO NOTHING",
                (session_id, agent.agent_id, _sql.dump(stored.to_dict())),
            )
            if cursor.rowcount != 1:
                raise ConflictError(f"agent {agent.agent_id!r} already exists in session {session_id!r}", version=1)
        return stored

    @_sql.lends_connection
    def _read_agent(self, conn: sqlite3.Connection, session_id: str, agent_id: str) -> AgentRecord | None:
        row = conn.execute(
            "SELECT version, data FROM mooring_agents WHERE session_id = ? AND agent_id = ?", (session_id, agent_id)
        ).fetchone()
        if row is None:
            return None
        return _sql.decode_agent(row[1], row[0], _sql.agent_where(self.describe(), session_id, agent_id))

    @_sql.lends_connection
    def _update_agent(
        self, conn: sqlite3.Connection, session_id: str, agent: AgentRecord, expected_version: int
    ) -> AgentRecord:
        with self._write(conn):
            self._require_session(conn, session_id)
            row = conn.execute(
                "SELECT version, data FROM mooring_agents WHERE session_id = ? AND agent_id = ?",
                (session_id, agent.agent_id),
            ).fetchone()
            stored_version = int(row[0]) if row is not None else 0
            if row is None or stored_version != expected_version:
                raise version_conflict(
                    f"agent {agent.agent_id!r} in session {session_id!r}", stored_version, expected_version
                )
            where = _sql.agent_where(self.describe(), session_id, agent.agent_id)
            new = agent.successor(expected_version, _sql.stored_created_at(row[1], where, agent.created_at))
            conn.execute(
                "UPDATE mooring_agents SET version = ?, data = ? WHERE session_id = ? AND agent_id = ?",
                (new.version, _sql.dump(new.to_dict()), session_id, agent.agent_id),
            )
        return new

    # -- messages -----------------------------------------------------------------------------

    @_sql.lends_connection
    def _append_messages(
        self, conn: sqlite3.Connection, session_id: str, agent_id: str, messages: list[MessageRecord]
    ) -> int:
        rows = [(session_id, agent_id, r.message_id, _sql.dump(r.to_dict())) for r in messages]
        with self._write(conn):
            self._require_agent(conn, session_id, agent_id)
            head = self._head(conn, session_id, agent_id)
            check_append(session_id, agent_id, messages, head)
            conn.executemany(
                "INSERT INTO mooring_messages (session_id, agent_id, message_id, data) VALUES (?, ?, ?, ?)", rows
            )
        new_head = head + len(messages)
        logger.debug(
            "session_id=<%s>, agent_id=<%s> | appended %d, head=<%d>", session_id, agent_id, len(rows), new_head
        )
        return new_head

    @_sql.lends_connection
    def _read_messages(
        self, conn: sqlite3.Connection, session_id: str, agent_id: str, start: int, end: int | None
    ) -> list[MessageRecord]:
        # A range over the primary key: cost follows the window, not the session's lifetime.
        query = (
            "SELECT message_id, data FROM mooring_messages WHERE session_id = ? AND agent_id = ? AND message_id >= ?"
        )
        params: tuple[Any, ...] = (session_id, agent_id, max(start, 0))
        if end is not None:
            query += " AND message_id < ?"
            params += (end,)
        # The fetched rows are as many tracked objects as the records: pause from the fetch on.
        with collection_paused(PAUSE_FROM if end is None else end - max(start, 0)):
            rows = conn.execute(query + " ORDER BY message_id", params).fetchall()
            return _sql.decode_messages(self.describe(), session_id, agent_id, rows)

    @_sql.lends_connection
    def _update_message(self, conn: sqlite3.Connection, session_id: str, agent_id: str, message: MessageRecord) -> None:
        with self._write(conn):
            self._require_agent(conn, session_id, agent_id)
            row = conn.execute(
                "SELECT data FROM mooring_messages WHERE session_id = ? AND agent_id = ? AND message_id = ?",
                (session_id, agent_id, message.message_id),
            ).fetchone()
            if row is None:
                raise SessionNotFoundError(
                    f"message {message.message_id} does not exist for agent {agent_id!r} in session {session_id!r}"
                )
            where = _sql.message_where(self.describe(), session_id, agent_id, message.message_id)
            record = MessageRecord(
                message_id=message.message_id,
                message=message.message,
                redact_message=message.redact_message,
                created_at=_sql.stored_created_at(row[0], where, message.created_at),
                updated_at=now_iso(),
                extra=message.extra,
            )
            conn.execute(
                "UPDATE mooring_messages SET data = ? WHERE session_id = ? AND agent_id = ? AND message_id = ?",
                (_sql.dump(record.to_dict()), session_id, agent_id, message.message_id),
            )

    @_sql.lends_connection
    def _truncate_messages(
        self, conn: sqlite3.Connection, session_id: str, agent_id: str, new_head: int, expected_head: int
    ) -> None:
        with self._write(conn):
            self._require_agent(conn, session_id, agent_id)
            head = self._head(conn, session_id, agent_id)
            if head != expected_head:
                raise ConflictError(f"head is {head}, not {expected_head}", head=head)
            # One transaction: readers see either the whole history or the cut one.
            conn.execute(
                "DELETE FROM mooring_messages WHERE session_id = ? AND agent_id = ? AND message_id >= ?",
                (session_id, agent_id, max(new_head, 0)),
            )
        logger.debug("session_id=<%s>, agent_id=<%s> | truncated %d -> %d", session_id, agent_id, head, new_head)

    # -- multi-agent records ------------------------------------------------------------------

    @_sql.lends_connection
    def _create_multi_agent(
        self, conn: sqlite3.Connection, session_id: str, record: MultiAgentRecord
    ) -> MultiAgentRecord:
        stored = record.first()
        with self._write(conn):
            self._require_session(conn, session_id)
            cursor = conn.execute(
                "INSERT INTO mooring_multi_agents (session_id, multi_agent_id, version, data) VALUES (?, ?, 1, ?) "
                "ON CONFLICT (session_id, multi_agent_id) DO NOTHING",
                (session_id, record.multi_agent_id, _sql.dump(stored.to_dict())),
            )
            if cursor.rowcount != 1:
                raise ConflictError(f"multi-agent {record.multi_agent_id!r} already exists", version=1)
        return stored

    @_sql.lends_connection
    def _read_multi_agent(
        self, conn: sqlite3.Connection, session_id: str, multi_agent_id: str
    ) -> MultiAgentRecord | None:
        row = conn.execute(
            "SELECT version, data FROM mooring_multi_agents WHERE session_id = ? AND multi_agent_id = ?",
            (session_id, multi_agent_id),
        ).fetchone()
        if row is None:
            return None
        return _sql.decode_multi(row[1], row[0], _sql.multi_where(self.describe(), session_id, multi_agent_id))

    @_sql.lends_connection
    def _update_multi_agent(
        self, conn: sqlite3.Connection, session_id: str, record: MultiAgentRecord, expected_version: int
    ) -> MultiAgentRecord:
        with self._write(conn):
            self._require_session(conn, session_id)
            row = conn.execute(
                "SELECT version, data FROM mooring_multi_agents WHERE session_id = ? AND multi_agent_id = ?",
                (session_id, record.multi_agent_id),
            ).fetchone()
            stored_version = int(row[0]) if row is not None else 0
            if row is None or stored_version != expected_version:
                raise version_conflict(f"multi-agent {record.multi_agent_id!r}", stored_version, expected_version)
            where = _sql.multi_where(self.describe(), session_id, record.multi_agent_id)
            new = record.successor(expected_version, _sql.decode_multi(row[1], stored_version, where).created_at)
            conn.execute(
                "UPDATE mooring_multi_agents SET version = ?, data = ? WHERE session_id = ? AND multi_agent_id = ?",
                (new.version, _sql.dump(new.to_dict()), session_id, record.multi_agent_id),
            )
        return new

    # -- leases -------------------------------------------------------------------------------
    # A token names its holder ("host:pid:random"). SQLite lives on one machine, so a lease
    # whose holder process is gone (kill -9, a crash) is taken over at once instead of after
    # its expiry; a reused pid only makes us wait for the expiry, the safe direction.
    # Lease rows commit without a WAL sync of their own (SQLiteConnections.unsynced): fencing
    # is by token within one boot, and the turn's synced append makes the row durable anyway.

    @_sql.lends_connection
    def _try_lease(self, conn: sqlite3.Connection, session_id: str, agent_id: str, ttl: float) -> Lease | None:
        # One machine shares one clock, so time.time() is a sound expiry for a local file.
        with self._db.write(conn, synced=False):
            now = time.time()
            row = conn.execute(
                "SELECT expires_at, token FROM mooring_leases WHERE session_id = ? AND agent_id = ?",
                (session_id, agent_id),
            ).fetchone()
            if row is not None and float(row[0]) > now and not _holder_is_dead(str(row[1])):
                return None
            token = f"{_HOST}:{os.getpid()}:{_sql.new_token()}"
            conn.execute(
                "INSERT OR REPLACE INTO mooring_leases (session_id, agent_id, token, expires_at) VALUES (?, ?, ?, ?)",
                (session_id, agent_id, token, now + ttl),
            )
        if row is not None:
            logger.debug(
                "session_id=<%s>, agent_id=<%s> | took over an expired or orphaned lease", session_id, agent_id
            )
        return Lease(session_id=session_id, agent_id=agent_id, token=token, expires_at=now + ttl)

    @_sql.lends_connection
    def _renew_lease(self, conn: sqlite3.Connection, lease: Lease, ttl: float) -> Lease:
        expires = time.time() + ttl
        with self._db.unsynced(conn):
            cursor = conn.execute(
                "UPDATE mooring_leases SET expires_at = ? WHERE session_id = ? AND agent_id = ? AND token = ?",
                (expires, lease.session_id, lease.agent_id, lease.token),
            )
        if cursor.rowcount != 1:
            raise LeaseLostError(f"lease on session {lease.session_id!r}, agent {lease.agent_id!r} was lost")
        return Lease(session_id=lease.session_id, agent_id=lease.agent_id, token=lease.token, expires_at=expires)

    @_sql.lends_connection
    def _release_lease(self, conn: sqlite3.Connection, lease: Lease) -> None:
        # The token check keeps a holder whose lease was taken over from freeing the new holder.
        with self._db.unsynced(conn):
            conn.execute(
                "DELETE FROM mooring_leases WHERE session_id = ? AND agent_id = ? AND token = ?",
                (lease.session_id, lease.agent_id, lease.token),
            )

    # -- lifecycle ----------------------------------------------------------------------------

    async def close(self) -> None:
        """Close pooled connections; later calls open new ones."""
        self._db.close()


class SQLiteSessionManager(RepositorySessionManager):
    """Persists to one SQLite database file.

    Example::

        agent = Agent(agent_id="assistant",
                      session_manager=SQLiteSessionManager("user-abc-123", path="./sessions.db"))

    ``path`` defaults to ``sessions.db`` beside the default file store (under
    ``$MOORING_HOME``, else the user data directory). ``busy_timeout`` and ``durability`` go
    to :class:`SQLiteSessionRepository`; other keyword options to
    :class:`RepositorySessionManager` (``lease_wait``, ``fail_fast``, ``lease_ttl``).
    """

    def __init__(
        self,
        session_id: str,
        path: str | os.PathLike[str] | None = None,
        *,
        busy_timeout: float = 30.0,
        durability: Durability = "fsync",
        **manager_options: Any,
    ) -> None:
        validate_id(session_id, "session_id")
        if path is None:
            path = default_storage_dir().parent / "sessions.db"
        repository = SQLiteSessionRepository(path, busy_timeout=busy_timeout, durability=durability)
        self.path = repository.path
        super().__init__(session_id, repository, **manager_options)
