"""A corrupt session record stops an Agent from being built on it, with the record named;
on the file store the listing still shows every other session."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from mooring import Agent
from mooring.cli import main
from mooring.errors import CorruptRecordError
from mooring.models import ScriptedModel
from mooring.session import FileSessionManager
from mooring.session.backends.sql.sqlite import SQLiteSessionManager, SQLiteSessionRepository
from mooring.session.manager import SessionManager
from mooring.session.records import SessionRecord

GARBAGE = {
    "not JSON": b"{ this is not json",
    "not an object": b"[1, 2, 3]",
    "no session_id": b'{"session_type": "AGENT"}',
    "another session's record": json.dumps({"session_id": "other", "session_type": "AGENT"}).encode(),
}


def _agent(manager: SessionManager, agent_id: str = "default") -> Agent:
    return Agent(model=ScriptedModel(["hi"]), agent_id=agent_id, session_manager=manager, callback_handler=None)


@pytest.mark.parametrize("agent_id", ["default", "newcomer"], ids=["stored agent", "new agent"])
@pytest.mark.parametrize("content", list(GARBAGE.values()), ids=list(GARBAGE))
def test_file_store_agent_on_a_corrupt_session_json_raises_naming_the_file(
    tmp_path: Path, content: bytes, agent_id: str
) -> None:
    _agent(FileSessionManager(session_id="s1", storage_dir=tmp_path))("hello")
    session_json = tmp_path / "session_s1" / "session.json"
    session_json.write_bytes(content)

    with pytest.raises(CorruptRecordError, match=str(session_json)):
        _agent(FileSessionManager(session_id="s1", storage_dir=tmp_path), agent_id)
    assert session_json.read_bytes() == content  # reported, never overwritten


def test_file_store_listing_skips_a_corrupt_session_and_shows_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for session_id in ("good", "bad", "copied"):
        _agent(FileSessionManager(session_id=session_id, storage_dir=tmp_path))("hello")
    (tmp_path / "session_bad" / "session.json").write_bytes(GARBAGE["not JSON"])
    # A session.json copied over from another session must not list "good" twice.
    (tmp_path / "session_copied" / "session.json").write_bytes(
        (tmp_path / "session_good" / "session.json").read_bytes()
    )

    capsys.readouterr()
    assert main(["sessions", "list", "--json", "--store", str(tmp_path)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [s["session_id"] for s in listed["sessions"]] == ["good"]
    assert len(_agent(FileSessionManager(session_id="good", storage_dir=tmp_path)).messages) == 2


@pytest.mark.parametrize(
    "data", ["{ not json", "[]", json.dumps({"session_id": "other"})], ids=["text", "list", "other"]
)
def test_sqlite_agent_on_a_corrupt_session_row_raises(tmp_path: Path, data: str) -> None:
    db = tmp_path / "sessions.db"
    first = SQLiteSessionManager("s1", path=db)
    _agent(first)("hello")
    asyncio.run(first.repository.close())
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE mooring_sessions SET data = ? WHERE session_id = 's1'", (data,))
    conn.close()

    manager = SQLiteSessionManager("s1", path=db)
    try:
        with pytest.raises(CorruptRecordError, match=f"sqlite:{db}"):
            _agent(manager)
    finally:
        asyncio.run(manager.repository.close())


def test_sqlite_listing_skips_a_corrupt_session_and_pages_past_it(tmp_path: Path) -> None:
    db = tmp_path / "sessions.db"
    repository = SQLiteSessionRepository(db)

    async def scenario() -> list[str]:
        for i, session_id in enumerate(["a", "b", "c", "d"]):
            await repository.create_session(SessionRecord(session_id=session_id, created_at=f"2025-01-0{i + 1}"))
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE mooring_sessions SET data = '{ not json' WHERE session_id = 'c'")
        conn.close()
        seen: list[str] = []
        cursor: str | None = None
        while True:  # pages of one: the corrupt row's page is empty but the paging goes on
            page = await repository.list_sessions(cursor=cursor, limit=1)
            seen.extend(s.session_id for s in page.sessions)
            cursor = page.next_cursor
            if cursor is None:
                return seen

    try:
        assert asyncio.run(scenario()) == ["d", "b", "a"]
    finally:
        asyncio.run(repository.close())
