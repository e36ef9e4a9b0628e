"""An SQLite store on read-only media: the reading commands work and write nothing, writes
fail with one clear line naming the database.

Tests run as root here, and root ignores permission bits, so the files are also made
immutable with ``chattr +i`` (which binds root too); where neither binds, the test skips.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cli_helpers import Cli

from mooring import Agent
from mooring.errors import ReadOnlyStoreError
from mooring.models import ScriptedModel
from mooring.session.backends.sql.sqlite import SQLiteSessionManager, SQLiteSessionRepository
from mooring.session.records import SessionRecord


def _write(db: Path, session_id: str, prompts: list[str]) -> None:
    agent = Agent(
        model=ScriptedModel([f"re: {p}" for p in prompts]),
        agent_id="default",
        session_manager=SQLiteSessionManager(session_id, path=db),
        callback_handler=None,
    )
    for prompt in prompts:
        agent(prompt)
    asyncio.run(agent.session_manager.repository.close())  # type: ignore[union-attr]


def _snapshot(directory: Path) -> dict[str, tuple[int, int, str]]:
    """Every file in ``directory`` with its size, mtime and content hash."""
    return {
        p.name: (p.stat().st_size, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(directory.iterdir())
    }


@contextmanager
def _read_only(*paths: Path) -> Iterator[None]:
    """Make ``paths`` unwritable (mode bits, and immutable where the file system allows)."""
    modes = {p: p.stat().st_mode for p in paths}
    for p in paths:
        p.chmod(0o555 if p.is_dir() else 0o444)
    frozen = shutil.which("chattr") is not None and (
        subprocess.run(["chattr", "+i", *map(str, paths)], capture_output=True).returncode == 0
    )
    try:
        if not all(not os.access(p, os.W_OK) for p in paths):
            pytest.skip("cannot make a file read-only here (root without chattr +i)")
        yield
    finally:
        if frozen:
            subprocess.run(["chattr", "-i", *map(str, paths)], check=True)
        for p, mode in modes.items():
            p.chmod(mode)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    directory = tmp_path / "media"
    directory.mkdir()
    path = directory / "sessions.db"
    _write(path, "s1", ["one", "two"])
    assert sorted(p.name for p in directory.iterdir()) == ["sessions.db"]  # closed cleanly: no -wal/-shm
    return path


def test_reading_commands_work_on_a_read_only_database_and_write_nothing(db: Path, cli: Cli) -> None:
    url = f"sqlite:///{db}"
    before = _snapshot(db.parent)
    with _read_only(db, db.parent):
        shown = cli.json("sessions", "show", "s1", "--store", url)
        assert [m["content"][0]["text"] for m in shown["agents"][0]["messages"]] == ["one", "re: one", "two", "re: two"]
        assert [s["session_id"] for s in cli.json("sessions", "list", "--store", url)["sessions"]] == ["s1"]
        code, out, err = cli("sessions", "export", "s1", "--store", url)
        assert code == 0, err
        assert '"type":"end"' in out
        code, out, err = cli("sessions", "verify", "--store", url)
        assert code == 0, err
        assert _snapshot(db.parent) == before

        code, _, err = cli("sessions", "delete", "s1", "--yes", "--store", url)
        assert code == 1
        assert "read-only" in err and str(db) in err and "Traceback" not in err
        assert _snapshot(db.parent) == before


def test_a_read_only_file_in_a_writable_directory_is_read_without_side_files(db: Path, cli: Cli) -> None:
    before = _snapshot(db.parent)
    with _read_only(db):
        shown = cli.json("sessions", "show", "s1", "--store", f"sqlite:///{db}")
        assert shown["agents"][0]["message_head"] == 4
    assert _snapshot(db.parent) == before


def test_a_read_only_directory_with_a_writable_file_is_read(db: Path, cli: Cli) -> None:
    before = _snapshot(db.parent)
    with _read_only(db.parent):
        shown = cli.json("sessions", "show", "s1", "--store", f"sqlite:///{db}")
        assert shown["agents"][0]["message_head"] == 4
        assert _snapshot(db.parent) == before


def test_transactions_still_in_the_wal_are_read_on_read_only_media(tmp_path: Path, cli: Cli) -> None:
    live = tmp_path / "live"
    live.mkdir()
    _write(live / "sessions.db", "s1", ["one"])
    repository = SQLiteSessionRepository(live / "sessions.db")
    try:
        asyncio.run(repository.create_session(SessionRecord(session_id="late")))
        # A copy taken while a connection is open, as a crash or a disk image leaves it: the
        # last transaction exists only in the -wal file.
        media = tmp_path / "media"
        shutil.copytree(live, media)
    finally:
        asyncio.run(repository.close())
    assert (media / "sessions.db-wal").stat().st_size > 0
    files = sorted(media.iterdir())
    with _read_only(*files, media):
        listed = cli.json("sessions", "list", "--store", f"sqlite:///{media / 'sessions.db'}")
        assert sorted(s["session_id"] for s in listed["sessions"]) == ["late", "s1"]


def test_read_only_on_request_refuses_every_write_and_leaves_the_database_unchanged(db: Path) -> None:
    content = db.read_bytes()

    async def scenario() -> None:
        for repository in (
            SQLiteSessionRepository(db, read_only=True),
            SQLiteSessionRepository.from_url(f"sqlite:///{db}?mode=ro"),
        ):
            try:
                assert repository.read_only
                assert [s.session_id for s in (await repository.list_sessions()).sessions] == ["s1"]
                with pytest.raises(ReadOnlyStoreError, match=f"sqlite database {db} is read-only"):
                    await repository.create_session(SessionRecord(session_id="new"))
                with pytest.raises(ReadOnlyStoreError):
                    await repository.acquire_lease("s1", "default", ttl=5, wait=0)
                with pytest.raises(ReadOnlyStoreError):
                    await repository.delete_session("s1")
                assert await repository.read_session("s1") is not None
            finally:
                await repository.close()

    asyncio.run(scenario())
    assert db.read_bytes() == content


def test_an_agent_on_a_read_only_database_restores_and_fails_its_turn_clearly(db: Path) -> None:
    with _read_only(db, db.parent):
        agent = Agent(
            model=ScriptedModel(["never"]),
            agent_id="default",
            session_manager=SQLiteSessionManager("s1", path=db),
            callback_handler=None,
        )
        assert len(agent.messages) == 4
        with pytest.raises(ReadOnlyStoreError, match="read-only"):
            agent("three")
        asyncio.run(agent.session_manager.repository.close())  # type: ignore[union-attr]


def test_a_missing_database_opened_read_only_is_a_clear_error(tmp_path: Path, cli: Cli) -> None:
    missing = tmp_path / "missing.db"
    code, _, err = cli("sessions", "list", "--store", f"sqlite:///{missing}?mode=ro")
    assert code == 1 and "does not exist" in err and str(missing) in err
    assert not missing.exists()
