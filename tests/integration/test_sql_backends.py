"""SQLite and PostgreSQL backends beyond the contract: many processes, migrations, failures.

What both SQL backends must do is written once in :class:`SQLBackendSuite`; ``TestSQLite``
and ``TestPostgres`` only say how to reach their database. Tests that concern one engine
alone (WAL mode, PgBouncer safety, killed connections) follow their class.

PostgreSQL tests each use a random schema (dropped afterwards) and only ever terminate the
server connections they opened themselves.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from mooring import Agent
from mooring.errors import ConfigurationError, CorruptRecordError, LeaseTimeoutError, StorageUnavailableError
from mooring.session import open_repository
from mooring.session.backends.sql.migrations import MIGRATIONS, SCHEMA_VERSION, migrate_postgres, migrate_sqlite
from mooring.session.backends.sql.sqlite import SQLiteSessionManager, SQLiteSessionRepository
from mooring.session.manager import SessionManager
from mooring.session.records import AgentRecord, MessageRecord, SessionRecord
from mooring.session.repository import SessionRepository
from mooring.testing import SameSessionTrialContract

from helpers.services import POSTGRES_DSN, require_service

try:
    import psycopg
except ImportError:  # the SQLite tests still run; the PostgreSQL ones skip
    psycopg = None  # type: ignore[assignment]

NEWER_REFUSED = (
    rf"database schema version {SCHEMA_VERSION + 1} is newer than this mooring supports "
    rf"\({SCHEMA_VERSION}\); upgrade mooring"
)


def _msg(i: int, text: str | None = None) -> MessageRecord:
    role = "user" if i % 2 == 0 else "assistant"
    return MessageRecord(message_id=i, message={"role": role, "content": [{"text": text or f"message {i}"}]})  # type: ignore[typeddict-item]


async def _session_with_agent(repo: SessionRepository, sid: str = "s1", agent_id: str = "agent") -> str:
    await repo.create_session(SessionRecord(session_id=sid))
    await repo.create_agent(sid, AgentRecord(agent_id=agent_id))
    return sid


def _with_param(dsn: str, **params: str) -> str:
    return dsn + ("&" if "?" in dsn else "?") + "&".join(f"{k}={v}" for k, v in params.items())


# -- how the shared tests reach each database ----------------------------------------------------


class Database:
    """One SQL store owned by one test: repositories on it, and raw access for tampering."""

    # What a hand edit leaves in a record's data column (each engine accepts different junk).
    bad_data: str
    # The driver error that an unreachable store chains as the cause.
    unreachable_cause: type[BaseException]

    def __init__(self) -> None:
        self._opened: list[SessionRepository] = []

    def _open(self, **options: Any) -> SessionRepository:
        raise NotImplementedError

    def repository(self, **options: Any) -> SessionRepository:
        """A new repository on this database, closed when the test ends."""
        repo = self._open(**options)
        self._opened.append(repo)
        return repo

    def url(self) -> str:
        raise NotImplementedError

    def manager(self, session_id: str) -> SessionManager:
        raise NotImplementedError

    def unreachable(self) -> SessionRepository:
        raise NotImplementedError

    def applied_migrations(self) -> list[tuple[Any, ...]]:
        """(name, version, applied_at) rows of the migrations table, by version."""
        raise NotImplementedError

    def migrate_again(self) -> list[str]:
        raise NotImplementedError

    def record_newer_migration(self) -> None:
        """What a newer mooring would leave behind after migrating this database."""
        raise NotImplementedError

    def corrupt(self, table: str, session_id: str, message_id: int | None = None) -> None:
        """Overwrite the data of ``table``'s rows in the session (one message when given)."""
        raise NotImplementedError

    def close(self) -> None:
        for repo in self._opened:
            asyncio.run(repo.close())


class SQLiteDatabase(Database):
    bad_data = '{"message": {"role": '
    unreachable_cause = OSError

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def _open(self, **options: Any) -> SessionRepository:
        return SQLiteSessionRepository(self.path, **options)

    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def manager(self, session_id: str) -> SessionManager:
        manager = SQLiteSessionManager(session_id, path=self.path)
        self._opened.append(manager.repository)
        return manager

    def unreachable(self) -> SessionRepository:
        blocker = self.path.parent / "not-a-dir"
        blocker.write_text("a file where the directory should be")
        repo = SQLiteSessionRepository(blocker / "sessions.db")
        self._opened.append(repo)
        return repo

    def _admin(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, isolation_level=None)

    def applied_migrations(self) -> list[tuple[Any, ...]]:
        conn = self._admin()
        try:
            return conn.execute("SELECT name, version, applied_at FROM mooring_migrations ORDER BY version").fetchall()
        finally:
            conn.close()

    def migrate_again(self) -> list[str]:
        conn = self._admin()
        try:
            return migrate_sqlite(conn, "test")
        finally:
            conn.close()

    def record_newer_migration(self) -> None:
        conn = self._admin()
        try:
            conn.execute(
                "INSERT INTO mooring_migrations (name, version, applied_at) VALUES (?, ?, ?)",
                ("9999_from_the_future", SCHEMA_VERSION + 1, "2999-01-01T00:00:00+00:00"),
            )
        finally:
            conn.close()

    def corrupt(self, table: str, session_id: str, message_id: int | None = None) -> None:
        where = "session_id = ?"
        params: list[Any] = [self.bad_data, session_id]
        if message_id is not None:
            where += " AND message_id = ?"
            params.append(message_id)
        conn = self._admin()
        try:
            conn.execute(f"UPDATE mooring_{table} SET data = ? WHERE {where}", params)
        finally:
            conn.close()


class PostgresDatabase(Database):
    bad_data = '"just a string"'  # JSONB accepts only valid JSON, but not every JSON is a record
    unreachable_cause = psycopg.OperationalError if psycopg is not None else Exception

    def __init__(self, schema: str) -> None:
        super().__init__()
        self.schema = schema

    def _open(self, dsn: str = POSTGRES_DSN, **options: Any) -> SessionRepository:
        from mooring.session.backends.sql.postgres import PostgresSessionRepository

        return PostgresSessionRepository(dsn, schema=self.schema, **options)

    def url(self) -> str:
        return _with_param(POSTGRES_DSN, schema=self.schema)

    def manager(self, session_id: str) -> SessionManager:
        from mooring.session.backends.sql.postgres import PostgresSessionManager

        manager = PostgresSessionManager(session_id, POSTGRES_DSN, schema=self.schema)
        self._opened.append(manager.repository)
        return manager

    def unreachable(self) -> SessionRepository:
        return self.repository(dsn="postgresql://postgres@127.0.0.1:1/test", timeout=1)

    def _table(self, name: str) -> Any:
        return psycopg.sql.SQL("{}.{}").format(psycopg.sql.Identifier(self.schema), psycopg.sql.Identifier(name))

    def applied_migrations(self) -> list[tuple[Any, ...]]:
        query = psycopg.sql.SQL("SELECT name, version, applied_at FROM {} ORDER BY version")
        with admin() as conn:
            return conn.execute(query.format(self._table("mooring_migrations"))).fetchall()

    def migrate_again(self) -> list[str]:
        with psycopg.connect(POSTGRES_DSN) as conn:  # one transaction, committed on leaving
            return migrate_postgres(conn, self.schema, "test")

    def record_newer_migration(self) -> None:
        with admin() as conn:
            conn.execute(
                psycopg.sql.SQL("INSERT INTO {} (name, version) VALUES (%s, %s)").format(
                    self._table("mooring_migrations")
                ),
                ("9999_from_the_future", SCHEMA_VERSION + 1),
            )

    def corrupt(self, table: str, session_id: str, message_id: int | None = None) -> None:
        statement = psycopg.sql.SQL("UPDATE {} SET data = %s WHERE session_id = %s").format(self._table(table))
        params: list[Any] = [self.bad_data, session_id]
        if message_id is not None:
            statement += psycopg.sql.SQL(" AND message_id = %s")
            params.append(message_id)
        with admin() as conn:
            conn.execute(statement, params)


def admin() -> Any:
    return psycopg.connect(POSTGRES_DSN, autocommit=True)


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[SQLiteDatabase]:
    db = SQLiteDatabase(tmp_path / "store" / "sessions.db")
    db.path.parent.mkdir()
    yield db
    db.close()


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh random schema; only it is dropped afterwards."""
    if psycopg is None:
        require_service("postgres", "psycopg is not installed (pip install 'mooring-agents[postgres]')")
    try:
        psycopg.connect(POSTGRES_DSN, connect_timeout=5).close()
    except psycopg.Error as exc:
        require_service("postgres", f"{POSTGRES_DSN}: {exc}")
    schema = f"mooring_test_{uuid.uuid4().hex[:12]}"
    yield schema
    with admin() as conn:
        conn.execute(psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psycopg.sql.Identifier(schema)))


@pytest.fixture
def pg_db(pg_schema: str) -> Iterator[PostgresDatabase]:
    db = PostgresDatabase(pg_schema)
    yield db
    db.close()


# -- what both SQL backends do ------------------------------------------------------------------


class SQLBackendSuite:
    """Subclasses provide a ``db`` fixture yielding a fresh :class:`Database`."""

    @pytest.fixture
    def db(self) -> Database:
        raise NotImplementedError("subclasses provide a 'db' fixture")

    def test_migrations_apply_once_and_refuse_a_newer_schema(self, db: Database) -> None:
        asyncio.run(db.repository().create_session(SessionRecord(session_id="kept")))
        applied = db.applied_migrations()
        assert [(name, version) for name, version, _ in applied] == [(m.name, m.version) for m in MIGRATIONS]

        # A second open finds everything applied and changes nothing.
        assert asyncio.run(db.repository().read_session("kept")) is not None
        assert db.migrate_again() == []
        assert db.applied_migrations() == applied

        # A newer mooring migrated this database: this one must not touch it.
        db.record_newer_migration()
        with pytest.raises(ConfigurationError, match=NEWER_REFUSED):
            asyncio.run(db.repository().read_session("kept"))

    def test_concurrent_first_opens_migrate_once(self, db: Database) -> None:
        repos = [db.repository() for _ in range(8)]
        start = threading.Barrier(len(repos))

        def first_use(repo: SessionRepository) -> int:
            start.wait()
            return len(asyncio.run(repo.list_sessions()).sessions)

        with ThreadPoolExecutor(len(repos)) as pool:
            assert list(pool.map(first_use, repos)) == [0] * len(repos)
        names = [name for name, _, _ in db.applied_migrations()]
        assert sorted(names) == sorted(m.name for m in MIGRATIONS)

    def test_listing_skips_an_unreadable_session_with_a_warning(
        self, db: Database, caplog: pytest.LogCaptureFixture
    ) -> None:
        repo = db.repository()

        async def setup() -> None:
            for sid in ("s-a", "s-b", "s-c"):
                await repo.create_session(SessionRecord(session_id=sid))

        asyncio.run(setup())
        db.corrupt("sessions", "s-b")  # written directly with SQL, as a hand edit would
        with caplog.at_level("WARNING", logger="mooring"):
            listed = asyncio.run(repo.list_sessions())
        assert sorted(s.session_id for s in listed.sessions) == ["s-a", "s-c"]
        assert any(
            "skipped an unreadable session" in r.getMessage() and "'s-b'" in r.getMessage() for r in caplog.records
        )
        # Paging keeps its place across the unreadable row: every readable session, once.
        seen: list[str] = []
        cursor = None
        while True:
            page = asyncio.run(repo.list_sessions(cursor=cursor, limit=1))
            seen += [s.session_id for s in page.sessions]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert sorted(seen) == ["s-a", "s-c"]
        with pytest.raises(CorruptRecordError, match="'s-b'"):
            asyncio.run(repo.read_session("s-b"))

    def test_corrupt_rows_name_the_record(self, db: Database) -> None:
        repo = db.repository()

        async def setup() -> None:
            await _session_with_agent(repo, "hand-edited")
            await repo.append_messages("hand-edited", "agent", [_msg(0), _msg(1), _msg(2)])

        asyncio.run(setup())
        db.corrupt("messages", "hand-edited", message_id=1)
        db.corrupt("agents", "hand-edited")
        with pytest.raises(CorruptRecordError) as info:
            asyncio.run(repo.read_messages("hand-edited", "agent"))
        assert all(part in str(info.value) for part in ("'hand-edited'", "'agent'", "message 1"))
        # The records around it still read, and rewriting the bad one repairs it.
        assert [r.message_id for r in asyncio.run(repo.read_messages("hand-edited", "agent", 2))] == [2]
        asyncio.run(repo.update_message("hand-edited", "agent", _msg(1, "repaired")))
        assert asyncio.run(repo.read_messages("hand-edited", "agent", 1, 2))[0].to_message()["content"] == [
            {"text": "repaired"}
        ]
        with pytest.raises(CorruptRecordError, match="'hand-edited', agent 'agent'"):
            asyncio.run(repo.read_agent("hand-edited", "agent"))

    def test_restore_reads_only_the_window(self, db: Database) -> None:
        repo = db.repository()

        async def restore_window() -> list[int]:
            sid = await _session_with_agent(repo, "long-lived")
            for start in range(0, 10_000, 1_000):
                await repo.append_messages(sid, "agent", [_msg(i) for i in range(start, start + 1_000)])
            assert await repo.message_head(sid, "agent", hint=9_000) == 10_000
            return [r.message_id for r in await repo.read_messages(sid, "agent", 9_960, 10_000)]

        assert asyncio.run(restore_window()) == list(range(9_960, 10_000))

    def test_unreachable_store_is_storage_unavailable_with_cause(self, db: Database) -> None:
        with pytest.raises(StorageUnavailableError) as info:
            asyncio.run(db.unreachable().read_session("anything"))
        assert isinstance(info.value.__cause__, db.unreachable_cause)

    def test_agent_round_trip_through_the_manager(self, db: Database) -> None:
        first = Agent(model="offline", agent_id="assistant", session_manager=db.manager("rt"), callback_handler=None)
        first("What is the capital of France?")
        second = Agent(model="offline", agent_id="assistant", session_manager=db.manager("rt"), callback_handler=None)
        assert second.messages == first.messages and len(second.messages) == 2
        assert "capital of France" in str(second("What did I just ask you?"))


# -- SQLite ---------------------------------------------------------------------------------------


class TestSQLite(SQLBackendSuite):
    @pytest.fixture
    def db(self, sqlite_db: SQLiteDatabase) -> SQLiteDatabase:
        return sqlite_db


@pytest.mark.slow
class TestSQLiteSameSession(SameSessionTrialContract):
    @pytest.fixture
    def trial_store(self, sqlite_db: SQLiteDatabase) -> str:
        return sqlite_db.url()


def test_sqlite_file_is_private_and_in_wal_mode(sqlite_db: SQLiteDatabase) -> None:
    asyncio.run(sqlite_db.repository().create_session(SessionRecord(session_id="s")))
    assert stat.S_IMODE(os.stat(sqlite_db.path).st_mode) == 0o600
    with sqlite3.connect(sqlite_db.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sqlite_url_options(tmp_path: Path) -> None:
    repo = open_repository(f"sqlite:///{tmp_path / 'u.db'}?durability=none&busy_timeout=5")
    assert isinstance(repo, SQLiteSessionRepository)
    assert repo.durability == "none" and repo.busy_timeout == 5.0 and repo.path == tmp_path / "u.db"


def test_sqlite_manager_defaults_beside_the_file_store() -> None:
    manager = SQLiteSessionManager("defaults")
    assert manager.path == Path(os.environ["MOORING_HOME"]) / "sessions.db"


@pytest.mark.slow
def test_many_processes_opening_a_new_sqlite_database_at_once(tmp_path: Path) -> None:
    """Switching a fresh file to WAL can be refused at once when several processes race to it."""
    code = "import asyncio, sys\nfrom mooring.session.backends.sql.sqlite import SQLiteSessionRepository\n"
    code += "asyncio.run(SQLiteSessionRepository(sys.argv[1]).read_session('x'))\n"
    failures = []
    for trial in range(12):
        path = tmp_path / f"race-{trial}.db"
        children = [
            subprocess.Popen([sys.executable, "-c", code, str(path)], stderr=subprocess.PIPE, text=True)
            for _ in range(8)
        ]
        for child in children:
            _, err = child.communicate(timeout=120)
            if child.returncode != 0:
                failures.append(err.strip().splitlines()[-1])
    assert failures == []


def test_a_sqlite_lease_held_by_a_killed_process_is_taken_over_at_once(tmp_path: Path) -> None:
    path = tmp_path / "killed.db"
    code = (
        "import asyncio, sys, time\n"
        "from mooring.session.backends.sql.sqlite import SQLiteSessionRepository\n"
        "from mooring.session import SessionRecord, AgentRecord\n"
        "async def main():\n"
        "    repo = SQLiteSessionRepository(sys.argv[1])\n"
        "    await repo.create_session(SessionRecord(session_id='s'))\n"
        "    await repo.create_agent('s', AgentRecord(agent_id='a'))\n"
        "    await repo.acquire_lease('s', 'a', ttl=3600, wait=0)\n"
        "    print('held', flush=True)\n"
        "    time.sleep(3600)\n"
        "asyncio.run(main())\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        repo = SQLiteSessionRepository(path)
        with pytest.raises(LeaseTimeoutError):  # a live holder keeps it
            asyncio.run(repo.acquire_lease("s", "a", ttl=30, wait=0))
    finally:
        holder.kill()
        holder.communicate()  # reaps the holder and closes its stdout pipe
    # The holder died an hour before its lease would expire: the lease is free now.
    lease = asyncio.run(repo.acquire_lease("s", "a", ttl=30, wait=0))
    asyncio.run(repo.release_lease(lease))


# -- PostgreSQL -----------------------------------------------------------------------------------


@pytest.mark.postgres
class TestPostgres(SQLBackendSuite):
    @pytest.fixture
    def db(self, pg_db: PostgresDatabase) -> PostgresDatabase:
        return pg_db


@pytest.mark.slow
@pytest.mark.postgres
class TestPostgresSameSession(SameSessionTrialContract):
    @pytest.fixture
    def trial_store(self, pg_db: PostgresDatabase) -> str:
        return pg_db.url()


@pytest.mark.postgres
def test_postgres_recovers_after_its_connections_are_terminated(pg_db: PostgresDatabase) -> None:
    app = f"mooring-test-{uuid.uuid4().hex[:8]}"
    repo = pg_db.repository(dsn=_with_param(POSTGRES_DSN, application_name=app))

    async def run() -> None:
        sid = await _session_with_agent(repo)
        assert await repo.append_messages(sid, "agent", [_msg(0), _msg(1)]) == 2
        with admin() as conn:
            killed = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s", (app,)
            ).fetchone()[0]
        assert killed >= 1
        # The pool notices the dead connections and reconnects: the next turn just works.
        assert await repo.append_messages(sid, "agent", [_msg(2), _msg(3)]) == 4
        assert [r.message_id for r in await repo.read_messages(sid, "agent")] == [0, 1, 2, 3]

    asyncio.run(run())


@pytest.mark.postgres
def test_postgres_connection_lost_mid_turn_leaves_nothing_partial(pg_db: PostgresDatabase) -> None:
    from psycopg import sql

    repo = pg_db.repository()

    async def run() -> None:
        sid = await _session_with_agent(repo)
        await repo.append_messages(sid, "agent", [_msg(0), _msg(1)])
        # Another transaction holds message id 3 uncommitted, so the turn [2, 3] stops halfway:
        # id 2 written inside its transaction, id 3 waiting. Then its connection is killed.
        with psycopg.connect(POSTGRES_DSN) as blocker, admin() as conn:
            blocker.execute(
                sql.SQL("INSERT INTO {}.messages VALUES (%s, 'agent', 3, '{{}}')").format(sql.Identifier(pg_db.schema)),
                (sid,),
            )
            turn = asyncio.create_task(repo.append_messages(sid, "agent", [_msg(2), _msg(3)]))
            deadline = time.monotonic() + 120
            waiting: list[Any] = []
            while not waiting and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                waiting = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                    (blocker.info.backend_pid,),
                ).fetchall()
            assert len(waiting) == 1, "the turn never reached the blocked insert"
            conn.execute("SELECT pg_terminate_backend(%s)", (waiting[0][0],))
            with pytest.raises(StorageUnavailableError) as info:
                await turn
            assert isinstance(info.value.__cause__, psycopg.OperationalError)
            blocker.rollback()
        assert [r.message_id for r in await repo.read_messages(sid, "agent")] == [0, 1]
        assert await repo.message_head(sid, "agent") == 2
        assert await repo.append_messages(sid, "agent", [_msg(2), _msg(3)]) == 4

    asyncio.run(run())


@pytest.mark.postgres
def test_postgres_never_creates_server_side_prepared_statements(pg_db: PostgresDatabase) -> None:
    """Safe behind PgBouncer in transaction mode: nothing outlives a transaction on the server."""
    repo: Any = pg_db.repository(min_size=1, max_size=1)  # one connection sees every statement

    async def many_turns() -> None:
        sid = await _session_with_agent(repo)
        for i in range(0, 20, 2):  # well past psycopg's default prepare threshold (5)
            await repo.append_messages(sid, "agent", [_msg(i), _msg(i + 1)])
            await repo.read_messages(sid, "agent", i)
            await repo.message_head(sid, "agent")

    asyncio.run(many_turns())
    with repo._connection() as conn:
        prepared = conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0]
    assert prepared == 0


@pytest.mark.postgres
def test_postgres_refuses_nul_before_any_of_the_turn_is_written(pg_db: PostgresDatabase) -> None:
    from mooring import UnstorableContentError
    from mooring.models import ScriptedModel

    def agent(responses: list[Any]) -> Agent:
        return Agent(model=ScriptedModel(responses), agent_id="a", session_manager=pg_db.manager("nul"))

    first = agent(["fine", "a\x00b"])
    first("hello")
    with pytest.raises(UnstorableContentError, match=r"key 'k' cannot be stored in postgresql.*U\+0000"):
        first.state.set("k", {"v": ["x\x00"]})
    with pytest.raises(UnstorableContentError, match=r"message 2 .*U\+0000"):
        first("nul\x00in the prompt")
    with pytest.raises(UnstorableContentError, match=r"message 3 .*nothing of the turn was written"):
        first("the answer holds one")
    stored = asyncio.run(pg_db.repository().read_messages("nul", "a"))
    assert [r.message_id for r in stored] == [0, 1]
    assert agent([]).state.get() == {}


@pytest.mark.postgres
def test_postgres_schemas_keep_applications_apart(pg_db: PostgresDatabase) -> None:
    other = PostgresDatabase(f"{pg_db.schema}_other")
    ours = open_repository(pg_db.url())
    theirs = other.repository()
    try:
        asyncio.run(ours.create_session(SessionRecord(session_id="same-id")))
        assert asyncio.run(theirs.read_session("same-id")) is None
        asyncio.run(theirs.create_session(SessionRecord(session_id="same-id")))
    finally:
        asyncio.run(ours.close())
        other.close()
        with admin() as conn:
            conn.execute(
                psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psycopg.sql.Identifier(other.schema))
            )


@pytest.mark.parametrize("hidden", ["psycopg", "psycopg_pool"])
def test_missing_postgres_driver_names_the_extra(hidden: str) -> None:
    script = (
        "import sys\n"
        f"sys.modules[{hidden!r}] = None\n"
        "from mooring.session import open_repository\n"
        "for attempt in (lambda: __import__('mooring.session.backends.sql.postgres'),\n"
        "                lambda: open_repository('postgresql://nobody@127.0.0.1/none')):\n"
        "    try:\n"
        "        attempt()\n"
        "    except ImportError as exc:\n"
        "        print(exc)\n"
        "    else:\n"
        "        print('imported')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2
    assert all("pip install 'mooring-agents[postgres]'" in line and hidden in line for line in lines)


_FIRST_OPEN = """
import asyncio, sys
from mooring.session import SQLiteSessionRepository

async def main():
    repo = SQLiteSessionRepository(sys.argv[1])
    # Three connections of one process open the new database at once, as a restore does.
    await asyncio.gather(repo.read_session("s"), repo.read_agent("s", "a"), repo.read_session("t"))
    await repo.close()

asyncio.run(main())
"""


@pytest.mark.slow
def test_many_processes_opening_a_new_sqlite_database_at_once_all_succeed(tmp_path: Path) -> None:
    # Switching a new database to WAL races with other connections doing the same; before the
    # fix most of these rounds had a process fail with "disk I/O error".
    failures = []
    for round_ in range(10):
        path = tmp_path / f"round-{round_}.db"
        procs = [
            subprocess.Popen([sys.executable, "-c", _FIRST_OPEN, str(path)], stderr=subprocess.PIPE, text=True)
            for _ in range(8)
        ]
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            if proc.returncode != 0:
                failures.append(err.strip().splitlines()[-1])
    assert failures == []
