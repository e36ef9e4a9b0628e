"""SQLite and PostgreSQL backends beyond the contract: many processes, migrations, failures.

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
from mooring.session.backends.sql.migrations import MIGRATIONS, SCHEMA_VERSION, migrate_sqlite
from mooring.session.backends.sql.sqlite import SQLiteSessionManager, SQLiteSessionRepository
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


async def _restore_window(repo: SessionRepository) -> list[int]:
    sid = await _session_with_agent(repo, "long-lived")
    for start in range(0, 10_000, 1_000):
        await repo.append_messages(sid, "agent", [_msg(i) for i in range(start, start + 1_000)])
    assert await repo.message_head(sid, "agent", hint=9_000) == 10_000
    records = await repo.read_messages(sid, "agent", 9_960, 10_000)
    return [r.message_id for r in records]


# -- SQLite ---------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_repo(tmp_path: Path) -> Iterator[SQLiteSessionRepository]:
    repo = SQLiteSessionRepository(tmp_path / "sessions.db")
    yield repo
    asyncio.run(repo.close())


@pytest.mark.slow
class TestSQLiteSameSession(SameSessionTrialContract):
    @pytest.fixture
    def trial_store(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'trial.db'}"


def test_sqlite_file_is_private_and_in_wal_mode(sqlite_repo: SQLiteSessionRepository) -> None:
    asyncio.run(sqlite_repo.create_session(SessionRecord(session_id="s")))
    assert stat.S_IMODE(os.stat(sqlite_repo.path).st_mode) == 0o600
    with sqlite3.connect(sqlite_repo.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sqlite_migrations_apply_once_and_refuse_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    repo = SQLiteSessionRepository(path)
    asyncio.run(repo.create_session(SessionRecord(session_id="kept")))
    with sqlite3.connect(path) as conn:
        applied = conn.execute("SELECT name, version, applied_at FROM mooring_migrations ORDER BY version").fetchall()
    assert [(name, version) for name, version, _ in applied] == [(m.name, m.version) for m in MIGRATIONS]

    # A second open finds everything applied and changes nothing.
    again = SQLiteSessionRepository(path)
    assert asyncio.run(again.read_session("kept")) is not None
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert migrate_sqlite(conn, "test") == []
        assert conn.execute("SELECT name, version, applied_at FROM mooring_migrations ORDER BY version").fetchall() == (
            applied
        )
        # A newer mooring migrated this database: this one must not touch it.
        conn.execute(
            "INSERT INTO mooring_migrations (name, version, applied_at) VALUES (?, ?, ?)",
            ("9999_from_the_future", SCHEMA_VERSION + 1, "2999-01-01T00:00:00+00:00"),
        )
    finally:
        conn.close()
    newer = SQLiteSessionRepository(path)
    with pytest.raises(ConfigurationError, match=NEWER_REFUSED):
        asyncio.run(newer.read_session("kept"))
    for r in (repo, again, newer):
        asyncio.run(r.close())


def test_sqlite_concurrent_first_opens_migrate_once(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    repos = [SQLiteSessionRepository(path) for _ in range(8)]
    start = threading.Barrier(len(repos))

    def first_use(repo: SQLiteSessionRepository) -> int:
        start.wait()
        return len(asyncio.run(repo.list_sessions()).sessions)

    with ThreadPoolExecutor(len(repos)) as pool:
        assert list(pool.map(first_use, repos)) == [0] * len(repos)
    with sqlite3.connect(path) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM mooring_migrations")]
    assert sorted(names) == sorted(m.name for m in MIGRATIONS)
    for repo in repos:
        asyncio.run(repo.close())


def test_sqlite_corrupt_rows_name_the_record(sqlite_repo: SQLiteSessionRepository) -> None:
    async def setup() -> None:
        await _session_with_agent(sqlite_repo, "hand-edited")
        await sqlite_repo.append_messages("hand-edited", "agent", [_msg(0), _msg(1), _msg(2)])

    asyncio.run(setup())
    conn = sqlite3.connect(sqlite_repo.path, isolation_level=None)
    try:
        conn.execute('UPDATE mooring_messages SET data = \'{"message": {"role": \' WHERE message_id = 1')
        conn.execute("UPDATE mooring_agents SET data = 'not json at all'")
    finally:
        conn.close()
    with pytest.raises(CorruptRecordError) as info:
        asyncio.run(sqlite_repo.read_messages("hand-edited", "agent"))
    assert all(part in str(info.value) for part in ("'hand-edited'", "'agent'", "message 1"))
    # The records around it still read, and rewriting the bad one repairs it.
    assert [r.message_id for r in asyncio.run(sqlite_repo.read_messages("hand-edited", "agent", 2))] == [2]
    asyncio.run(sqlite_repo.update_message("hand-edited", "agent", _msg(1, "repaired")))
    assert asyncio.run(sqlite_repo.read_messages("hand-edited", "agent", 1, 2))[0].to_message()["content"] == [
        {"text": "repaired"}
    ]
    with pytest.raises(CorruptRecordError, match="'hand-edited', agent 'agent'"):
        asyncio.run(sqlite_repo.read_agent("hand-edited", "agent"))


def test_sqlite_restore_reads_only_the_window(sqlite_repo: SQLiteSessionRepository) -> None:
    assert asyncio.run(_restore_window(sqlite_repo)) == list(range(9_960, 10_000))


def test_sqlite_unreachable_file_is_storage_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the directory should be")
    repo = SQLiteSessionRepository(blocker / "sessions.db")
    with pytest.raises(StorageUnavailableError) as info:
        asyncio.run(repo.read_session("s"))
    assert isinstance(info.value.__cause__, OSError)


def test_sqlite_url_options(tmp_path: Path) -> None:
    repo = open_repository(f"sqlite:///{tmp_path / 'u.db'}?durability=none&busy_timeout=5")
    assert isinstance(repo, SQLiteSessionRepository)
    assert repo.durability == "none" and repo.busy_timeout == 5.0 and repo.path == tmp_path / "u.db"


def test_agent_round_trip_through_sqlite_manager(tmp_path: Path) -> None:
    path = tmp_path / "agents.db"
    first_manager = SQLiteSessionManager("round-trip", path=path)
    first = Agent(model="offline", agent_id="assistant", session_manager=first_manager, callback_handler=None)
    first("What is the capital of France?")
    second_manager = SQLiteSessionManager("round-trip", path=path)
    second = Agent(model="offline", agent_id="assistant", session_manager=second_manager, callback_handler=None)
    assert second.messages == first.messages and len(second.messages) == 2
    assert "capital of France" in str(second("What did I just ask you?"))
    for manager in (first_manager, second_manager):
        asyncio.run(manager.repository.close())


def test_sqlite_manager_defaults_beside_the_file_store() -> None:
    manager = SQLiteSessionManager("defaults")
    assert manager.path == Path(os.environ["MOORING_HOME"]) / "sessions.db"


# -- PostgreSQL -----------------------------------------------------------------------------------


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh random schema; only it is dropped afterwards."""
    if psycopg is None:
        require_service("postgres", "psycopg is not installed (pip install 'mooring[postgres]')")
    try:
        psycopg.connect(POSTGRES_DSN, connect_timeout=5).close()
    except psycopg.Error as exc:
        require_service("postgres", f"{POSTGRES_DSN}: {exc}")
    schema = f"mooring_test_{uuid.uuid4().hex[:12]}"
    yield schema
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psycopg.sql.Identifier(schema)))


def _pg_repo(schema: str, dsn: str = POSTGRES_DSN, **options: Any) -> Any:
    from mooring.session.backends.sql.postgres import PostgresSessionRepository

    return PostgresSessionRepository(dsn, schema=schema, **options)


def _admin() -> Any:
    return psycopg.connect(POSTGRES_DSN, autocommit=True)


def _with_param(dsn: str, **params: str) -> str:
    return dsn + ("&" if "?" in dsn else "?") + "&".join(f"{k}={v}" for k, v in params.items())


@pytest.mark.slow
@pytest.mark.postgres
class TestPostgresSameSession(SameSessionTrialContract):
    @pytest.fixture
    def trial_store(self, pg_schema: str) -> str:
        return _with_param(POSTGRES_DSN, schema=pg_schema)


@pytest.mark.postgres
def test_postgres_migrations_apply_once_and_refuse_a_newer_schema(pg_schema: str) -> None:
    from psycopg import sql

    table = sql.SQL("{}.mooring_migrations").format(sql.Identifier(pg_schema))
    query = sql.SQL("SELECT name, version, applied_at FROM {} ORDER BY version").format(table)
    repos = [_pg_repo(pg_schema) for _ in range(6)]

    async def first_use_at_once() -> None:
        await asyncio.gather(*(r.list_sessions() for r in repos))

    asyncio.run(first_use_at_once())  # six pools racing to migrate a fresh schema
    with _admin() as conn:
        applied = conn.execute(query).fetchall()
    assert [(name, version) for name, version, _ in applied] == [(m.name, m.version) for m in MIGRATIONS]

    again = _pg_repo(pg_schema)
    asyncio.run(again.create_session(SessionRecord(session_id="kept")))
    with _admin() as conn:
        assert conn.execute(query).fetchall() == applied
        conn.execute(
            sql.SQL("INSERT INTO {} (name, version) VALUES (%s, %s)").format(table),
            ("9999_from_the_future", SCHEMA_VERSION + 1),
        )
    newer = _pg_repo(pg_schema)
    with pytest.raises(ConfigurationError, match=NEWER_REFUSED):
        asyncio.run(newer.read_session("kept"))
    for repo in [*repos, again, newer]:
        asyncio.run(repo.close())


@pytest.mark.postgres
def test_postgres_server_down_is_storage_unavailable_with_cause() -> None:
    if psycopg is None:
        require_service("postgres", "psycopg is not installed (pip install 'mooring[postgres]')")
    repo = _pg_repo("mooring_unreachable", "postgresql://postgres@127.0.0.1:1/test", timeout=1)
    try:
        with pytest.raises(StorageUnavailableError) as info:
            asyncio.run(repo.read_session("anything"))
        assert isinstance(info.value.__cause__, psycopg.OperationalError)
        assert "127.0.0.1" in str(info.value.__cause__)
    finally:
        asyncio.run(repo.close())


@pytest.mark.postgres
def test_postgres_recovers_after_its_connections_are_terminated(pg_schema: str) -> None:
    app = f"mooring-test-{uuid.uuid4().hex[:8]}"
    repo = _pg_repo(pg_schema, _with_param(POSTGRES_DSN, application_name=app))

    async def run() -> None:
        sid = await _session_with_agent(repo)
        assert await repo.append_messages(sid, "agent", [_msg(0), _msg(1)]) == 2
        with _admin() as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s", (app,)
            ).fetchone()[0]
        assert killed >= 1
        # The pool notices the dead connections and reconnects: the next turn just works.
        assert await repo.append_messages(sid, "agent", [_msg(2), _msg(3)]) == 4
        assert [r.message_id for r in await repo.read_messages(sid, "agent")] == [0, 1, 2, 3]

    try:
        asyncio.run(run())
    finally:
        asyncio.run(repo.close())


@pytest.mark.postgres
def test_postgres_connection_lost_mid_turn_leaves_nothing_partial(pg_schema: str) -> None:
    from psycopg import sql

    repo = _pg_repo(pg_schema)

    async def run() -> None:
        sid = await _session_with_agent(repo)
        await repo.append_messages(sid, "agent", [_msg(0), _msg(1)])
        # Another transaction holds message id 3 uncommitted, so the turn [2, 3] stops halfway:
        # id 2 written inside its transaction, id 3 waiting. Then its connection is killed.
        with psycopg.connect(POSTGRES_DSN) as blocker, _admin() as admin:
            blocker.execute(
                sql.SQL("INSERT INTO {}.messages VALUES (%s, 'agent', 3, '{{}}')").format(sql.Identifier(pg_schema)),
                (sid,),
            )
            turn = asyncio.create_task(repo.append_messages(sid, "agent", [_msg(2), _msg(3)]))
            deadline = time.monotonic() + 10
            waiting: list[Any] = []
            while not waiting and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                waiting = admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                    (blocker.info.backend_pid,),
                ).fetchall()
            assert len(waiting) == 1, "the turn never reached the blocked insert"
            admin.execute("SELECT pg_terminate_backend(%s)", (waiting[0][0],))
            with pytest.raises(StorageUnavailableError) as info:
                await turn
            assert isinstance(info.value.__cause__, psycopg.OperationalError)
            blocker.rollback()
        assert [r.message_id for r in await repo.read_messages(sid, "agent")] == [0, 1]
        assert await repo.message_head(sid, "agent") == 2
        assert await repo.append_messages(sid, "agent", [_msg(2), _msg(3)]) == 4

    try:
        asyncio.run(run())
    finally:
        asyncio.run(repo.close())


@pytest.mark.postgres
def test_postgres_never_creates_server_side_prepared_statements(pg_schema: str) -> None:
    """Safe behind PgBouncer in transaction mode: nothing outlives a transaction on the server."""
    repo = _pg_repo(pg_schema, min_size=1, max_size=1)  # one connection sees every statement

    async def many_turns() -> None:
        sid = await _session_with_agent(repo)
        for i in range(0, 20, 2):  # well past psycopg's default prepare threshold (5)
            await repo.append_messages(sid, "agent", [_msg(i), _msg(i + 1)])
            await repo.read_messages(sid, "agent", i)
            await repo.message_head(sid, "agent")

    try:
        asyncio.run(many_turns())
        prepared = repo._call(lambda conn: conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0])
        assert prepared == 0
    finally:
        asyncio.run(repo.close())


@pytest.mark.postgres
def test_postgres_corrupt_rows_name_the_record(pg_schema: str) -> None:
    from psycopg import sql

    repo = _pg_repo(pg_schema)
    try:

        async def setup() -> None:
            await _session_with_agent(repo, "hand-edited")
            await repo.append_messages("hand-edited", "agent", [_msg(0), _msg(1)])

        asyncio.run(setup())
        with _admin() as conn:
            conn.execute(
                sql.SQL("UPDATE {}.messages SET data = '\"just a string\"' WHERE message_id = 1").format(
                    sql.Identifier(pg_schema)
                )
            )
        with pytest.raises(CorruptRecordError) as info:
            asyncio.run(repo.read_messages("hand-edited", "agent"))
        assert all(part in str(info.value) for part in ("'hand-edited'", "'agent'", "message 1"))
    finally:
        asyncio.run(repo.close())


@pytest.mark.postgres
def test_postgres_restore_reads_only_the_window(pg_schema: str) -> None:
    repo = _pg_repo(pg_schema)
    try:
        assert asyncio.run(_restore_window(repo)) == list(range(9_960, 10_000))
    finally:
        asyncio.run(repo.close())


@pytest.mark.postgres
def test_postgres_schemas_keep_applications_apart(pg_schema: str) -> None:
    other_schema = f"{pg_schema}_other"
    ours = open_repository(_with_param(POSTGRES_DSN, schema=pg_schema))
    theirs = _pg_repo(other_schema)
    try:
        asyncio.run(ours.create_session(SessionRecord(session_id="same-id")))
        assert asyncio.run(theirs.read_session("same-id")) is None
        asyncio.run(theirs.create_session(SessionRecord(session_id="same-id")))
    finally:
        asyncio.run(ours.close())
        asyncio.run(theirs.close())
        with _admin() as conn:
            conn.execute(
                psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psycopg.sql.Identifier(other_schema))
            )


@pytest.mark.postgres
def test_agent_round_trip_through_postgres_manager(pg_schema: str) -> None:
    from mooring.session.backends.sql.postgres import PostgresSessionManager

    managers = [PostgresSessionManager("round-trip", POSTGRES_DSN, schema=pg_schema) for _ in range(2)]
    try:
        first = Agent(model="offline", agent_id="assistant", session_manager=managers[0], callback_handler=None)
        first("What is the capital of France?")
        second = Agent(model="offline", agent_id="assistant", session_manager=managers[1], callback_handler=None)
        assert second.messages == first.messages and len(second.messages) == 2
        assert "capital of France" in str(second("What did I just ask you?"))
    finally:
        for manager in managers:
            asyncio.run(manager.repository.close())


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
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2
    assert all("pip install 'mooring[postgres]'" in line and hidden in line for line in lines)


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
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    repo = SQLiteSessionRepository(path)
    with pytest.raises(LeaseTimeoutError):  # a live holder keeps it
        asyncio.run(repo.acquire_lease("s", "a", ttl=30, wait=0))
    holder.kill()
    holder.wait()
    # The holder died an hour before its lease would expire: the lease is free now.
    lease = asyncio.run(repo.acquire_lease("s", "a", ttl=30, wait=0))
    asyncio.run(repo.release_lease(lease))
