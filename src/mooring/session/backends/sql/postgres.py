"""The PostgreSQL backend: psycopg 3 with a connection pool, JSONB records, one schema per app.

Every table lives in one schema (option ``schema``, default ``"mooring"``), so several
applications share a database without colliding; all SQL names the schema explicitly
instead of relying on ``search_path``. Connections never create server-side prepared
statements (``prepare_threshold=None``) and hold no session state between operations, so
the backend is safe behind PgBouncer in transaction mode.

Concurrency: an append locks the agent row, checks the head and inserts the batch in one
transaction (a unique violation on ``(session_id, agent_id, message_id)`` is reported as a
``ConflictError`` too); agent and multi-agent records are compare-and-set on ``version``.
Invocation leases are rows with a token and an expiry computed with the database clock
(``now()``), so clients with skewed clocks still agree on who holds a lease.

Operations run the sync driver in worker threads (mooring's shared I/O pool) over a
thread-safe pool opened on first use, so the repository works from any event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import AbstractContextManager
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from typing_extensions import Self

from mooring.errors import missing_extra

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict
    from psycopg.types.json import Jsonb
    from psycopg_pool import ConnectionPool
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise missing_extra("postgres", exc.name or "psycopg") from exc

from mooring._gc import PAUSE_FROM, collection_paused
from mooring._ids import validate_id
from mooring._json import find_unstorable
from mooring.errors import (
    ConfigurationError,
    ConflictError,
    LeaseLostError,
    SessionNotFoundError,
    UnstorableContentError,
)
from mooring.session.backends.sql import base as _sql
from mooring.session.backends.sql._pg_pool import (
    DEFAULT_CONNECT_TIMEOUT,
    Conn,
    PostgresConnections,
    check_connect_timeout,
)
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
from mooring.session.url import query_options, without_query

logger = logging.getLogger(__name__)


_MAX_IDENTIFIER = 63  # PostgreSQL's NAMEDATALEN - 1


def _jsonb(data: dict[str, Any], what: str) -> Jsonb:
    """``data`` for a JSONB column, refused up front (naming where) if JSONB cannot hold it:
    its text type has no NUL character, which the other backends store."""
    problem = find_unstorable(data, max_depth=None, allow_nul=False)
    if problem is not None:
        raise UnstorableContentError(f"{what} cannot be stored in PostgreSQL (JSONB): {problem}")
    return Jsonb(data)


def _dsn_connect_timeout(dsn: str | None) -> float | None:
    """The ``connect_timeout`` a libpq connection string sets itself, if any (validated)."""
    if not dsn:
        return None
    try:
        value = conninfo_to_dict(dsn).get("connect_timeout")
    except psycopg.Error:
        return None  # PostgresConnections reports the bad string
    return None if value is None else check_connect_timeout(value, "connect_timeout in the connection string")


class PostgresSessionRepository(_sql.SQLRepository[Conn]):
    """Sessions in PostgreSQL tables under one schema.

    Example::

        repo = PostgresSessionRepository("postgresql://app@db/app", schema="assistant")
        manager = RepositorySessionManager("user-42", repo)

    Pass either ``dsn`` (a pool of ``min_size``..``max_size`` connections is opened on first
    use and closed by :meth:`close`) or your own ``psycopg_pool.ConnectionPool`` as ``pool``
    (opened and closed by you; configure its connections with ``prepare_threshold=None`` if
    it goes through PgBouncer). ``timeout`` bounds the wait for a free connection of a busy
    pool; ``connect_timeout`` (seconds, default 5) bounds how long a server that cannot be
    reached takes to be reported: operations then raise ``StorageUnavailableError`` with the
    cause chained, and the first operation after the server is back succeeds.
    The schema and its tables are created on first use (see :mod:`.migrations`).
    """

    #: JSONB's text type has no U+0000: the session manager refuses it before any write.
    stores_nul: ClassVar[bool] = False

    @classmethod
    def from_url(cls, url: str) -> Self:
        """A libpq URL; ``?schema=name`` picks the schema, ``?connect_timeout=seconds`` bounds
        how long an unreachable server takes to be reported, other parameters go to libpq."""
        options = query_options(url)
        schema = options.pop("schema", None)
        connect_timeout = options.pop("connect_timeout", None)
        dsn = without_query(url)
        if options:
            dsn += "?" + urlencode(options, quote_via=quote)  # libpq reads "+" literally
        kwargs: dict[str, Any] = {"schema": schema} if schema else {}
        if connect_timeout is not None:
            kwargs["connect_timeout"] = check_connect_timeout(connect_timeout, "connect_timeout in the URL")
        return cls(dsn, **kwargs)

    def __init__(
        self,
        dsn: str | None = None,
        *,
        pool: ConnectionPool[Any] | None = None,
        schema: str = "mooring",
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 30.0,
        connect_timeout: float | None = None,
    ) -> None:
        if dsn is not None and pool is not None:
            raise ConfigurationError("pass either dsn or pool to PostgresSessionRepository, not both")
        if not isinstance(schema, str) or not schema or len(schema.encode()) > _MAX_IDENTIFIER or "\x00" in schema:
            raise ConfigurationError(f"schema must be a PostgreSQL identifier of 1-{_MAX_IDENTIFIER} bytes")
        if min_size < 0 or max_size < max(min_size, 1):
            raise ConfigurationError(f"invalid pool sizes min_size={min_size}, max_size={max_size}")
        self.schema = schema
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ConfigurationError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.timeout = float(timeout)
        if connect_timeout is None:  # a connect_timeout in the DSN itself, else the default
            in_dsn = _dsn_connect_timeout(dsn) if pool is None else None
            connect_timeout = DEFAULT_CONNECT_TIMEOUT if in_dsn is None else in_dsn
        self.connect_timeout = check_connect_timeout(connect_timeout)
        self._db = PostgresConnections(
            None if pool is not None else dsn or "",  # "": libpq defaults and PG* environment variables
            pool,
            schema=schema,
            min_size=min_size,
            max_size=max_size,
            timeout=self.timeout,
            connect_timeout=self.connect_timeout,
            describe=self.describe,
        )
        self._queries: dict[str, sql.Composed] = {}

    def describe(self) -> str:
        params = self._db.params
        if self._db.conninfo is None:
            return f"postgresql (caller's pool), schema {self.schema}"
        user = f"{params['user']}@" if params.get("user") else ""
        port = f":{params['port']}" if params.get("port") else ""
        return f"postgresql://{user}{params.get('host', '')}{port}/{params.get('dbname', '')}, schema {self.schema}"

    # -- plumbing -----------------------------------------------------------------------------

    def _q(self, template: str) -> sql.Composed:
        """``template`` with ``{s}`` bound to the quoted schema name (composed once)."""
        found = self._queries.get(template)
        if found is None:
            found = sql.SQL(template).format(s=sql.Identifier(self.schema))
            self._queries[template] = found
        return found

    def _connection(self) -> AbstractContextManager[Conn]:
        return self._db.connection()

    def _session_exists(self, conn: Conn, session_id: str, *, lock: bool = False) -> bool:
        # FOR SHARE keeps a concurrent delete_session out until this transaction ends.
        query = "SELECT 1 FROM {s}.sessions WHERE session_id = %s" + (" FOR SHARE" if lock else "")
        return conn.execute(self._q(query), (session_id,)).fetchone() is not None

    def _require_session(self, conn: Conn, session_id: str, *, lock: bool = False) -> None:
        if not self._session_exists(conn, session_id, lock=lock):
            raise SessionNotFoundError(f"session {session_id!r} does not exist in {self.describe()}")

    def _lock_agent(self, conn: Conn, session_id: str, agent_id: str) -> None:
        """Lock the agent row for this transaction (serialising appends and truncations);
        ``SessionNotFoundError`` if the agent (or its session) does not exist."""
        row = conn.execute(
            self._q("SELECT 1 FROM {s}.agents WHERE session_id = %s AND agent_id = %s FOR NO KEY UPDATE"),
            (session_id, agent_id),
        ).fetchone()
        if row is None:
            self._require_session(conn, session_id)
            raise SessionNotFoundError(f"agent {agent_id!r} does not exist in session {session_id!r}")

    def _head(self, conn: Conn, session_id: str, agent_id: str) -> int:
        row = conn.execute(
            self._q(
                "SELECT COALESCE(MAX(message_id) + 1, 0) FROM {s}.messages WHERE session_id = %s AND agent_id = %s"
            ),
            (session_id, agent_id),
        ).fetchone()
        return int(row[0]) if row is not None else 0

    # -- sessions -----------------------------------------------------------------------------

    @_sql.lends_connection
    def _create_session(self, conn: Conn, session: SessionRecord) -> SessionRecord:
        row = conn.execute(
            self._q(
                "INSERT INTO {s}.sessions (session_id, created_at, data) VALUES (%s, %s, %s) "
                "ON CONFLICT (session_id) DO NOTHING RETURNING 1"
            ),
            (session.session_id, session.created_at, _jsonb(session.to_dict(), f"session {session.session_id!r}")),
        ).fetchone()
        if row is None:
            raise ConflictError(f"session {session.session_id!r} already exists in {self.describe()}")
        return session

    @_sql.lends_connection
    def _read_session(self, conn: Conn, session_id: str) -> SessionRecord | None:
        row = conn.execute(self._q("SELECT data FROM {s}.sessions WHERE session_id = %s"), (session_id,)).fetchone()
        return None if row is None else _sql.decode_session(row[0], _sql.session_where(self.describe(), session_id))

    @_sql.lends_connection
    def _list_sessions(self, conn: Conn, cursor: str | None, limit: int) -> SessionPage:
        after = _sql.page_after(cursor)
        # data::text: decoded here, so a row JSONB cannot be parsed into a record is caught per row.
        columns = "SELECT session_id, created_at, data::text FROM {s}.sessions"
        order = " ORDER BY created_at DESC, session_id DESC LIMIT %s"
        if after is None:
            rows = conn.execute(self._q(columns + order), (limit + 1,)).fetchall()
        else:
            rows = conn.execute(
                self._q(columns + " WHERE (created_at, session_id) < (%s, %s)" + order),
                (after[0], after[1], limit + 1),
            ).fetchall()
        return _sql.session_page(self.describe(), rows, limit)

    @_sql.lends_connection
    def _delete_session(self, conn: Conn, session_id: str) -> bool:
        with conn.transaction():
            found = (
                conn.execute(
                    self._q("DELETE FROM {s}.sessions WHERE session_id = %s RETURNING 1"), (session_id,)
                ).fetchone()
                is not None
            )
            for table in ("agents", "messages", "multi_agents", "leases"):
                conn.execute(self._q(f"DELETE FROM {{s}}.{table} WHERE session_id = %s"), (session_id,))
        logger.debug("session_id=<%s> | deleted=<%s>", session_id, found)
        return found

    # -- agents -------------------------------------------------------------------------------

    @_sql.lends_connection
    def _list_agents(self, conn: Conn, session_id: str) -> list[str]:
        with conn.transaction():
            self._require_session(conn, session_id)
            rows = conn.execute(
                self._q("SELECT agent_id FROM {s}.agents WHERE session_id = %s"), (session_id,)
            ).fetchall()
        return sorted(str(r[0]) for r in rows)

    @_sql.lends_connection
    def _list_multi_agents(self, conn: Conn, session_id: str) -> list[str]:
        with conn.transaction():
            self._require_session(conn, session_id)
            rows = conn.execute(
                self._q("SELECT multi_agent_id FROM {s}.multi_agents WHERE session_id = %s"), (session_id,)
            ).fetchall()
        return sorted(str(r[0]) for r in rows)

    @_sql.lends_connection
    def _create_agent(self, conn: Conn, session_id: str, agent: AgentRecord) -> AgentRecord:
        stored = agent.copy()
        stored.version = 1
        with conn.transaction():
            self._require_session(conn, session_id, lock=True)
            row = conn.execute(
                self._q(
                    "INSERT INTO {s}.agents (session_id, agent_id, version, data) VALUES (%s, %s, 1, %s) "
                    "ON CONFLICT (session_id, agent_id) DO NOTHING RETURNING 1"
                ),
                (session_id, agent.agent_id, _jsonb(stored.to_dict(), f"agent {agent.agent_id!r}")),
            ).fetchone()
            if row is None:
                raise ConflictError(f"agent {agent.agent_id!r} already exists in session {session_id!r}", version=1)
        return stored

    @_sql.lends_connection
    def _read_agent(self, conn: Conn, session_id: str, agent_id: str) -> AgentRecord | None:
        row = conn.execute(
            self._q("SELECT version, data FROM {s}.agents WHERE session_id = %s AND agent_id = %s"),
            (session_id, agent_id),
        ).fetchone()
        if row is None:
            return None
        return _sql.decode_agent(row[1], row[0], _sql.agent_where(self.describe(), session_id, agent_id))

    @_sql.lends_connection
    def _update_agent(self, conn: Conn, session_id: str, agent: AgentRecord, expected_version: int) -> AgentRecord:
        with conn.transaction():
            row = conn.execute(
                self._q(
                    "SELECT version, data->>'created_at' FROM {s}.agents "
                    "WHERE session_id = %s AND agent_id = %s FOR NO KEY UPDATE"
                ),
                (session_id, agent.agent_id),
            ).fetchone()
            if row is None:
                self._require_session(conn, session_id)
            stored_version = int(row[0]) if row is not None else 0
            if row is None or stored_version != expected_version:
                raise version_conflict(
                    f"agent {agent.agent_id!r} in session {session_id!r}", stored_version, expected_version
                )
            new = agent.successor(expected_version, row[1])
            conn.execute(
                self._q("UPDATE {s}.agents SET version = %s, data = %s WHERE session_id = %s AND agent_id = %s"),
                (new.version, _jsonb(new.to_dict(), f"agent {agent.agent_id!r}"), session_id, agent.agent_id),
            )
        return new

    # -- messages -----------------------------------------------------------------------------

    @_sql.lends_connection
    def _append_messages(self, conn: Conn, session_id: str, agent_id: str, messages: list[MessageRecord]) -> int:
        rows = [
            (session_id, agent_id, r.message_id, _jsonb(r.to_dict(), f"message {r.message_id} of agent {agent_id!r}"))
            for r in messages
        ]
        try:
            with conn.transaction():
                self._lock_agent(conn, session_id, agent_id)
                head = self._head(conn, session_id, agent_id)
                check_append(session_id, agent_id, messages, head)
                if rows:
                    with conn.cursor() as cursor:
                        cursor.executemany(
                            self._q(
                                "INSERT INTO {s}.messages (session_id, agent_id, message_id, data) "
                                "VALUES (%s, %s, %s, %s)"
                            ),
                            rows,
                        )
        except pg_errors.UniqueViolation as exc:
            # Only reachable if a writer bypasses the agent-row lock; still never an overwrite.
            head = self._head(conn, session_id, agent_id)
            raise ConflictError(
                f"message id {messages[0].message_id} was already taken for agent {agent_id!r} "
                f"in session {session_id!r} (head is {head})",
                head=head,
            ) from exc
        new_head = head + len(messages)
        logger.debug(
            "session_id=<%s>, agent_id=<%s> | appended %d, head=<%d>", session_id, agent_id, len(rows), new_head
        )
        return new_head

    @_sql.lends_connection
    def _read_messages(
        self, conn: Conn, session_id: str, agent_id: str, start: int, end: int | None
    ) -> list[MessageRecord]:
        # A primary-key range scan: cost follows the window, not the session's lifetime.
        # data::text: decoded here by json.loads, which also tells whether any bytes are inside.
        query = (
            "SELECT message_id, data::text FROM {s}.messages "
            "WHERE session_id = %s AND agent_id = %s AND message_id >= %s"
        )
        params: tuple[Any, ...] = (session_id, agent_id, max(start, 0))
        if end is not None:
            query += " AND message_id < %s"
            params += (end,)
        # The fetched rows are as many tracked objects as the records: pause from the fetch on.
        with collection_paused(PAUSE_FROM if end is None else end - max(start, 0)):
            rows = conn.execute(self._q(query + " ORDER BY message_id"), params).fetchall()
            return _sql.decode_messages(self.describe(), session_id, agent_id, rows)

    @_sql.lends_connection
    def _update_message(self, conn: Conn, session_id: str, agent_id: str, message: MessageRecord) -> None:
        with conn.transaction():
            row = conn.execute(
                self._q(
                    "SELECT data->>'created_at' FROM {s}.messages "
                    "WHERE session_id = %s AND agent_id = %s AND message_id = %s FOR UPDATE"
                ),
                (session_id, agent_id, message.message_id),
            ).fetchone()
            if row is None:
                self._lock_agent(conn, session_id, agent_id)  # the precise "not found"
                raise SessionNotFoundError(
                    f"message {message.message_id} does not exist for agent {agent_id!r} in session {session_id!r}"
                )
            record = MessageRecord(
                message_id=message.message_id,
                message=message.message,
                redact_message=message.redact_message,
                created_at=row[0] or message.created_at,
                updated_at=now_iso(),
                extra=message.extra,
            )
            conn.execute(
                self._q(
                    "UPDATE {s}.messages SET data = %s WHERE session_id = %s AND agent_id = %s AND message_id = %s"
                ),
                (
                    _jsonb(record.to_dict(), f"message {message.message_id} of agent {agent_id!r}"),
                    session_id,
                    agent_id,
                    message.message_id,
                ),
            )

    @_sql.lends_connection
    def _truncate_messages(self, conn: Conn, session_id: str, agent_id: str, new_head: int, expected_head: int) -> None:
        with conn.transaction():
            self._lock_agent(conn, session_id, agent_id)
            head = self._head(conn, session_id, agent_id)
            if head != expected_head:
                raise ConflictError(f"head is {head}, not {expected_head}", head=head)
            conn.execute(
                self._q("DELETE FROM {s}.messages WHERE session_id = %s AND agent_id = %s AND message_id >= %s"),
                (session_id, agent_id, max(new_head, 0)),
            )
        logger.debug("session_id=<%s>, agent_id=<%s> | truncated %d -> %d", session_id, agent_id, head, new_head)

    # -- multi-agent records ------------------------------------------------------------------

    @_sql.lends_connection
    def _create_multi_agent(self, conn: Conn, session_id: str, record: MultiAgentRecord) -> MultiAgentRecord:
        stored = record.first()
        with conn.transaction():
            self._require_session(conn, session_id, lock=True)
            row = conn.execute(
                self._q(
                    "INSERT INTO {s}.multi_agents (session_id, multi_agent_id, version, data) "
                    "VALUES (%s, %s, 1, %s) ON CONFLICT (session_id, multi_agent_id) DO NOTHING RETURNING 1"
                ),
                (session_id, record.multi_agent_id, _jsonb(stored.to_dict(), f"multi-agent {record.multi_agent_id!r}")),
            ).fetchone()
            if row is None:
                raise ConflictError(f"multi-agent {record.multi_agent_id!r} already exists", version=1)
        return stored

    @_sql.lends_connection
    def _read_multi_agent(self, conn: Conn, session_id: str, multi_agent_id: str) -> MultiAgentRecord | None:
        row = conn.execute(
            self._q("SELECT version, data FROM {s}.multi_agents WHERE session_id = %s AND multi_agent_id = %s"),
            (session_id, multi_agent_id),
        ).fetchone()
        if row is None:
            return None
        return _sql.decode_multi(row[1], row[0], _sql.multi_where(self.describe(), session_id, multi_agent_id))

    @_sql.lends_connection
    def _update_multi_agent(
        self, conn: Conn, session_id: str, record: MultiAgentRecord, expected_version: int
    ) -> MultiAgentRecord:
        with conn.transaction():
            self._require_session(conn, session_id)
            row = conn.execute(
                self._q(
                    "SELECT version, data FROM {s}.multi_agents "
                    "WHERE session_id = %s AND multi_agent_id = %s FOR NO KEY UPDATE"
                ),
                (session_id, record.multi_agent_id),
            ).fetchone()
            stored_version = int(row[0]) if row is not None else 0
            if row is None or stored_version != expected_version:
                raise version_conflict(f"multi-agent {record.multi_agent_id!r}", stored_version, expected_version)
            where = _sql.multi_where(self.describe(), session_id, record.multi_agent_id)
            new = record.successor(expected_version, _sql.decode_multi(row[1], stored_version, where).created_at)
            conn.execute(
                self._q(
                    "UPDATE {s}.multi_agents SET version = %s, data = %s WHERE session_id = %s AND multi_agent_id = %s"
                ),
                (
                    new.version,
                    _jsonb(new.to_dict(), f"multi-agent {record.multi_agent_id!r}"),
                    session_id,
                    record.multi_agent_id,
                ),
            )
        return new

    # -- leases -------------------------------------------------------------------------------

    @_sql.lends_connection
    def _try_lease(self, conn: Conn, session_id: str, agent_id: str, ttl: float) -> Lease | None:
        token = _sql.new_token()
        # One statement, atomic under concurrency: insert, or take over only an expired row.
        # Expiry is judged by the server clock; the client gets back the remaining seconds.
        row = conn.execute(
            self._q(
                "INSERT INTO {s}.leases AS l (session_id, agent_id, token, expires_at) "
                "VALUES (%s, %s, %s, now() + make_interval(secs => %s::float8)) "
                "ON CONFLICT (session_id, agent_id) DO UPDATE "
                "SET token = EXCLUDED.token, expires_at = EXCLUDED.expires_at WHERE l.expires_at <= now() "
                "RETURNING extract(epoch FROM l.expires_at - now())::float8"
            ),
            (session_id, agent_id, token, ttl),
        ).fetchone()
        if row is None:
            return None
        return Lease(session_id=session_id, agent_id=agent_id, token=token, expires_at=time.time() + float(row[0]))

    @_sql.lends_connection
    def _renew_lease(self, conn: Conn, lease: Lease, ttl: float) -> Lease:
        row = conn.execute(
            self._q(
                "UPDATE {s}.leases SET expires_at = now() + make_interval(secs => %s::float8) "
                "WHERE session_id = %s AND agent_id = %s AND token = %s "
                "RETURNING extract(epoch FROM expires_at - now())::float8"
            ),
            (ttl, lease.session_id, lease.agent_id, lease.token),
        ).fetchone()
        if row is None:
            raise LeaseLostError(f"lease on session {lease.session_id!r}, agent {lease.agent_id!r} was lost")
        return Lease(
            session_id=lease.session_id,
            agent_id=lease.agent_id,
            token=lease.token,
            expires_at=time.time() + float(row[0]),
        )

    @_sql.lends_connection
    def _release_lease(self, conn: Conn, lease: Lease) -> None:
        # The token check keeps a holder whose lease was taken over from freeing the new holder.
        conn.execute(
            self._q("DELETE FROM {s}.leases WHERE session_id = %s AND agent_id = %s AND token = %s"),
            (lease.session_id, lease.agent_id, lease.token),
        )

    # -- lifecycle ----------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the pool this repository opened (a caller's pool is left alone)."""
        await asyncio.to_thread(self._db.close)


class PostgresSessionManager(RepositorySessionManager):
    """Persists to PostgreSQL.

    Example::

        agent = Agent(agent_id="assistant",
                      session_manager=PostgresSessionManager("user-abc-123", "postgresql://app@db/app"))

    Each manager opens its own small pool; a server handling many sessions should build one
    :class:`PostgresSessionRepository` (or pass ``pool=``) and share it through
    :class:`RepositorySessionManager`. Other keyword options go to
    :class:`RepositorySessionManager` (``lease_wait``, ``fail_fast``, ``lease_ttl``).
    """

    def __init__(
        self,
        session_id: str,
        dsn: str | None = None,
        *,
        schema: str = "mooring",
        pool: ConnectionPool[Any] | None = None,
        **manager_options: Any,
    ) -> None:
        validate_id(session_id, "session_id")
        repository = PostgresSessionRepository(dsn, pool=pool, schema=schema)
        super().__init__(session_id, repository, **manager_options)
