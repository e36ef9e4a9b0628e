"""mooring.session.verify used as a library: find damage, repair it, load the session again."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from mooring import Agent
from mooring.errors import SessionNotFoundError
from mooring.models import ScriptedModel
from mooring.session import (
    FileSessionManager,
    FileSessionRepository,
    InMemorySessionRepository,
    RepositorySessionManager,
    SessionRepository,
)
from mooring.session.backends.file.repair import FileStoreInspector, inspector_for
from mooring.session.verify import Problem, VerifyReport, verify_session, verify_store
from mooring.types import Message

T = TypeVar("T")
TURNS = [("one", "1"), ("two", "2"), ("three", "3")]


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def converse(manager: Any, turns: list[tuple[str, str]] = TURNS) -> list[Message]:
    agent = Agent(model=ScriptedModel([a for _, a in turns]), session_manager=manager, callback_handler=None)
    for prompt, _ in turns:
        agent(prompt)
    return list(agent.messages)


def loaded(manager: Any) -> list[Message]:
    """What an agent restores from the store."""
    return list(Agent(model=ScriptedModel([]), session_manager=manager, callback_handler=None).messages)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


def file_session(store: Path, session_id: str = "s1") -> list[Message]:
    return converse(FileSessionManager(session_id=session_id, storage_dir=store))


def message_file(store: Path, message_id: int, session_id: str = "s1") -> Path:
    return store / f"session_{session_id}" / "agents" / "agent_default" / "messages" / f"message_{message_id}.json"


def check(store: Path, *, repair: bool = False, session_id: str | None = "s1") -> VerifyReport:
    repository = FileSessionRepository(store)
    inspector = FileStoreInspector(repository)
    if session_id is None:
        return run(verify_store(repository, repair=repair, inspector=inspector))
    return run(verify_session(repository, session_id, repair=repair, inspector=inspector))


def kinds(problems: list[Problem] | None) -> list[str]:
    return [p.kind for p in problems or []]


def test_a_healthy_session_verifies_ok(store: Path) -> None:
    file_session(store)
    file_session(store, "s2")
    report = check(store)
    assert report.ok and report.problems == [] and report.remaining is None
    assert (report.sessions, report.agents, report.messages) == (1, 1, 6)
    whole = check(store, session_id=None)
    assert whole.ok and (whole.sessions, whole.messages) == (2, 12)
    # The JSON form is plain data.
    assert json.loads(json.dumps(whole.to_dict()))["ok"] is True


def test_an_unknown_session_is_not_found(store: Path) -> None:
    file_session(store)
    with pytest.raises(SessionNotFoundError):
        check(store, session_id="nobody")


def test_a_torn_last_message_is_quarantined_and_a_placeholder_takes_its_id(store: Path) -> None:
    before = file_session(store)
    torn = message_file(store, 5)
    data = torn.read_bytes()
    torn.write_bytes(data[: len(data) // 2])

    report = check(store)
    [corrupt] = report.errors
    assert (corrupt.kind, corrupt.message_id, corrupt.location) == ("corrupt-record", 5, str(torn))
    assert corrupt.fix is not None and "text-only assistant message at message 5" in corrupt.fix

    repaired = check(store, repair=True)
    assert repaired.ok, repaired.to_dict()
    [moved] = [r for r in repaired.repairs if r.action == "quarantined"]
    assert moved.location == str(torn) and moved.to is not None and moved.message_id == 5
    assert Path(moved.to).read_bytes() == data[: len(data) // 2]  # kept aside, not deleted
    [placeholder] = [r for r in repaired.repairs if r.action == "placeholder"]
    assert placeholder.location == str(torn) and placeholder.message_id == 5
    assert repaired.remaining == []  # the placeholder answers "three"

    messages = loaded(FileSessionManager(session_id="s1", storage_dir=store))
    assert messages[:5] == before[:5]
    assert messages[5] == {
        "role": "assistant",
        "content": [{"text": "[mooring: message 5 could not be read and was moved to quarantine]"}],
    }


def test_a_corrupt_message_in_the_middle_keeps_every_later_message(store: Path) -> None:
    before = file_session(store)
    message_file(store, 2).write_text("{")
    healthy = {i: message_file(store, i).read_bytes() for i in (0, 1, 3, 4, 5)}

    report = check(store)
    assert [(p.kind, p.message_id) for p in report.errors] == [("corrupt-record", 2)]
    assert report.messages == 5  # every readable message was still checked

    repaired = check(store, repair=True)
    assert repaired.ok, repaired.to_dict()
    moved = [(r.message_id, Path(r.location).name) for r in repaired.repairs if r.action == "quarantined"]
    assert moved == [(2, "message_2.json")]
    assert {i: message_file(store, i).read_bytes() for i in (0, 1, 3, 4, 5)} == healthy  # untouched
    messages = loaded(FileSessionManager(session_id="s1", storage_dir=store))
    assert len(messages) == 6 and messages[:2] == before[:2] and messages[3:] == before[3:]
    assert messages[2]["role"] == "user" and "message 2 could not be read" in messages[2]["content"][0]["text"]
    assert check(store).errors == []


def test_a_stale_head_hint_is_corrected_on_a_file_store(store: Path) -> None:
    before = file_session(store)
    repository = FileSessionRepository(store)
    run(_set_hint(repository, 9))

    [mismatch] = check(store).problems
    assert mismatch.kind == "head-mismatch" and mismatch.severity == "error"
    assert "is 9 but the store's head is 6" in mismatch.detail

    repaired = check(store, repair=True)
    assert [r.action for r in repaired.repairs] == ["updated-head"] and repaired.remaining == []
    record = run(repository.read_agent("s1", "default"))
    assert record is not None and record.next_message_id == 6
    assert loaded(FileSessionManager(session_id="s1", storage_dir=store)) == before


def test_a_stale_head_hint_is_corrected_through_the_contract_alone() -> None:
    repository = InMemorySessionRepository()
    before = converse(RepositorySessionManager("s1", repository))
    run(_set_hint(repository, 2))

    report = run(verify_session(repository, "s1"))
    [mismatch] = report.problems
    assert (mismatch.kind, mismatch.severity) == ("head-mismatch", "warning")
    assert mismatch.location == "session 's1', agent 'default' (agent record)"

    repaired = run(verify_session(repository, "s1", repair=True))
    assert [r.action for r in repaired.repairs] == ["updated-head"] and repaired.remaining == []
    assert loaded(RepositorySessionManager("s1", repository)) == before


async def _set_hint(repository: SessionRepository, hint: int) -> None:
    record = await repository.read_agent("s1", "default")
    assert record is not None
    record.next_message_id = hint
    await repository.update_agent("s1", record, expected_version=record.version)


def test_a_temp_file_left_by_a_crash_is_moved_aside(store: Path) -> None:
    before = file_session(store)
    directory = message_file(store, 0).parent
    stale = directory / ".mooring-0123abcd.tmp"
    stale.write_text('{"message": {"role": "user", "content": [{"te')
    old = stale.stat().st_mtime - 3600
    os.utime(stale, (old, old))
    live = directory / ".mooring-fedc3210.tmp"  # a write in progress: not a problem
    live.write_text("{")

    report = check(store)
    [found] = report.problems
    assert (found.kind, found.severity, found.location) == ("temp-file", "warning", str(stale))
    assert report.ok  # a warning only

    repaired = check(store, repair=True)
    [moved] = repaired.repairs
    assert moved.action == "quarantined" and moved.to is not None
    assert Path(moved.to).read_text().startswith('{"message"')
    assert not stale.exists() and live.exists() and repaired.remaining == []
    assert loaded(FileSessionManager(session_id="s1", storage_dir=store)) == before


def test_stray_names_are_reported_and_left_alone(store: Path) -> None:
    file_session(store)
    padded = message_file(store, 0).with_name("message_01.json")
    padded.write_text("{}")
    (store / "session_x").write_text("")  # a file where a session directory belongs

    report = check(store, session_id=None)
    assert sorted((p.kind, Path(p.location).name) for p in report.problems) == [
        ("stray-name", "message_01.json"),
        ("stray-name", "session_x"),
    ]
    repaired = check(store, repair=True, session_id=None)
    assert repaired.repairs == [] and padded.exists()


def test_two_repairs_with_one_inspector_never_overwrite_a_quarantined_file(store: Path) -> None:
    file_session(store)
    repository = FileSessionRepository(store)
    inspector = FileStoreInspector(repository)
    targets = []
    for content in ("first", "second"):
        message_file(store, 5).write_text(content)
        report = run(verify_session(repository, "s1", repair=True, inspector=inspector))
        targets += [Path(r.to) for r in report.repairs if r.to is not None]
    assert [t.read_text() for t in targets] == ["first", "second"]


def test_the_inspector_is_only_for_file_stores(store: Path) -> None:
    assert isinstance(inspector_for(FileSessionRepository(store)), FileStoreInspector)
    assert inspector_for(InMemorySessionRepository()) is None
