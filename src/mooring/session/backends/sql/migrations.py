"""Schema migrations for the SQL backends (SQLite and PostgreSQL).

Each migration is named and numbered; applying one records a row ``(name, version,
applied_at)`` in ``mooring_migrations``. The schema version of a database is the highest
version recorded there. Migrations run on first use of a repository, inside one
transaction that also serialises concurrent starters (``BEGIN IMMEDIATE`` on SQLite, a
transaction-scoped advisory lock on PostgreSQL), so two processes opening a fresh database
at once apply each migration exactly once. A database whose schema version is newer than
this code knows is refused: an older mooring must not write to a layout it does not know.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mooring.errors import ConfigurationError
from mooring.session.records import now_iso

if TYPE_CHECKING:
    import psycopg

MIGRATIONS_TABLE = "mooring_migrations"


@dataclass(frozen=True, kw_only=True)
class Migration:
    """One schema step. PostgreSQL statements name the schema as ``{schema}``."""

    version: int
    name: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        name="0001_initial",
        # SQLite tables carry a prefix: the database file may be shared with the application.
        sqlite=(
            """CREATE TABLE mooring_sessions (
                session_id TEXT NOT NULL PRIMARY KEY,
                created_at TEXT NOT NULL,
                data TEXT NOT NULL
            )""",
            "CREATE INDEX mooring_sessions_newest ON mooring_sessions (created_at DESC, session_id DESC)",
            """CREATE TABLE mooring_agents (
                session_id TEXT NOT NULL,
                agent_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                data TEXT NOT NULL,
                PRIMARY KEY (session_id, agent_id)
            )""",
            """CREATE TABLE mooring_messages (
                session_id TEXT NOT NULL,
                agent_id TEXT NOT NULL,
                message_id INTEGER NOT NULL,
                data TEXT NOT NULL,
                PRIMARY KEY (session_id, agent_id, message_id)
            )""",
            """CREATE TABLE mooring_multi_agents (
                session_id TEXT NOT NULL,
                multi_agent_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                data TEXT NOT NULL,
                PRIMARY KEY (session_id, multi_agent_id)
            )""",
            """CREATE TABLE mooring_leases (
                session_id TEXT NOT NULL,
                agent_id TEXT NOT NULL,
                token TEXT NOT NULL,
                expires_at REAL NOT NULL,
                PRIMARY KEY (session_id, agent_id)
            ) WITHOUT ROWID""",
        ),
        # COLLATE "C" makes ORDER BY / row comparisons code-point order, as in Python and
        # SQLite, so cursors mean the same thing on every backend whatever the database locale.
        postgres=(
            """CREATE TABLE {schema}.sessions (
                session_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
                created_at TEXT COLLATE "C" NOT NULL,
                data JSONB NOT NULL
            )""",
            "CREATE INDEX sessions_newest ON {schema}.sessions (created_at DESC, session_id DESC)",
            """CREATE TABLE {schema}.agents (
                session_id TEXT COLLATE "C" NOT NULL,
                agent_id TEXT COLLATE "C" NOT NULL,
                version BIGINT NOT NULL,
                data JSONB NOT NULL,
                PRIMARY KEY (session_id, agent_id)
            )""",
            """CREATE TABLE {schema}.messages (
                session_id TEXT COLLATE "C" NOT NULL,
                agent_id TEXT COLLATE "C" NOT NULL,
                message_id BIGINT NOT NULL,
                data JSONB NOT NULL,
                PRIMARY KEY (session_id, agent_id, message_id)
            )""",
            """CREATE TABLE {schema}.multi_agents (
                session_id TEXT COLLATE "C" NOT NULL,
                multi_agent_id TEXT COLLATE "C" NOT NULL,
                version BIGINT NOT NULL,
                data JSONB NOT NULL,
                PRIMARY KEY (session_id, multi_agent_id)
            )""",
            """CREATE TABLE {schema}.leases (
                session_id TEXT COLLATE "C" NOT NULL,
                agent_id TEXT COLLATE "C" NOT NULL,
                token TEXT NOT NULL,
                expires_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (session_id, agent_id)
            )""",
        ),
    ),
)

SCHEMA_VERSION = MIGRATIONS[-1].version


def check_version(recorded: int | None, where: str, *, known: int = SCHEMA_VERSION) -> None:
    """Refuse a database migrated by a newer mooring."""
    if recorded is not None and recorded > known:
        raise ConfigurationError(
            f"{where}: database schema version {recorded} is newer than this mooring supports ({known}); "
            "upgrade mooring"
        )


def pending(applied: Iterable[str], migrations: Iterable[Migration] = MIGRATIONS) -> list[Migration]:
    """Migrations not yet recorded, in version order."""
    done = set(applied)
    return sorted((m for m in migrations if m.name not in done), key=lambda m: m.version)


# -- SQLite -------------------------------------------------------------------------------------


def _sqlite_state(conn: sqlite3.Connection) -> tuple[set[str], int | None] | None:
    """Applied names and recorded version, or None when the table does not exist yet."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (MIGRATIONS_TABLE,)
    ).fetchone()
    if exists is None:
        return None
    rows = conn.execute(f"SELECT name, version FROM {MIGRATIONS_TABLE}").fetchall()
    return {str(r[0]) for r in rows}, max((int(r[1]) for r in rows), default=None)


def migrate_sqlite(conn: sqlite3.Connection, where: str) -> list[str]:
    """Bring an SQLite database (connection in autocommit mode) up to date.

    Returns the names applied now (empty when it already was up to date).
    """
    state = _sqlite_state(conn)
    if state is not None:
        check_version(state[1], where)
        if not pending(state[0]):
            return []  # the common case takes no write lock
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
            "name TEXT NOT NULL PRIMARY KEY, version INTEGER NOT NULL, applied_at TEXT NOT NULL)"
        )
        # Re-read under the write lock: another process may have migrated meanwhile.
        state = _sqlite_state(conn)
        applied, recorded = state if state is not None else (set(), None)
        check_version(recorded, where)
        todo = pending(applied)
        for migration in todo:
            for statement in migration.sqlite:
                conn.execute(statement)
            conn.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} (name, version, applied_at) VALUES (?, ?, ?)",
                (migration.name, migration.version, now_iso()),
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return [m.name for m in todo]


# -- PostgreSQL ---------------------------------------------------------------------------------


def advisory_key(schema: str) -> int:
    """A stable signed 64-bit advisory-lock key for migrating ``schema``."""
    digest = hashlib.blake2b(f"mooring-migrations:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def migrate_postgres(conn: psycopg.Connection[Any], schema: str, where: str) -> list[str]:
    """Bring ``schema`` up to date; run inside a transaction on ``conn`` (committed by the caller)."""
    from psycopg import sql

    ident = sql.Identifier(schema)
    table = sql.SQL("{}.{}").format(ident, sql.Identifier(MIGRATIONS_TABLE))
    # Serialises concurrent starters; released at the end of the caller's transaction, so it
    # is also safe behind PgBouncer in transaction mode.
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (advisory_key(schema),))
    # Checking first avoids needing CREATE privilege on the database once the schema exists.
    if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is None:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(ident))
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (name TEXT NOT NULL PRIMARY KEY, version INTEGER NOT NULL, "
            "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        ).format(table)
    )
    rows = conn.execute(sql.SQL("SELECT name, version FROM {}").format(table)).fetchall()
    check_version(max((int(r[1]) for r in rows), default=None), where)
    todo = pending(str(r[0]) for r in rows)
    for migration in todo:
        for statement in migration.postgres:
            conn.execute(sql.SQL(statement).format(schema=ident))
        conn.execute(
            sql.SQL("INSERT INTO {} (name, version) VALUES (%s, %s)").format(table),
            (migration.name, migration.version),
        )
    return [m.name for m in todo]
