"""mooring.session.verify used as a library: find damage, repair it, load the session again."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from mooring import Agent, tool
from mooring.errors import ConfigurationError, CorruptRecordError, SessionNotFoundError
from mooring.models import ScriptedModel, tool_call
from mooring.session import (
    FileSessionManager,
    FileSessionRepository,
    InMemorySessionRepository,
    RepositorySessionManager,
    SessionRepository,
    open_repository,
)
from mooring.session._placeholder import LOST_TOOL_NAME
from mooring.session.backends.file.repair import FileStoreInspector, inspector_for
from mooring.session.records import ADVISORY_LAG
from mooring.session.verify import Problem, VerifyReport, verify_session, verify_store
from mooring.types import Message

T = TypeVar("T")
TURNS = [("one", "1"), ("two", "2"), ("three", "3")]


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def converse(manager: Any, turns: list[tuple[str, str]] = TURNS) -> list[Message]:
    agent = Agent(
        agent_id="default", model=ScriptedModel([a for _, a in turns]), session_manager=manager, callback_handler=None
    )
    for prompt, _ in turns:
        agent(prompt)
    return list(agent.messages)


def loaded(manager: Any) -> list[Message]:
    """What an agent restores from the store."""
    return list(
        Agent(agent_id="default", model=ScriptedModel([]), session_manager=manager, callback_handler=None).messages
    )


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
    assert corrupt.fix is not None and "placeholder (a text-only assistant message) at message 5" in corrupt.fix

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
    turns = [(f"question {i}", f"answer {i}") for i in range(ADVISORY_LAG)]
    before = converse(RepositorySessionManager("s1", repository), turns)
    run(_set_hint(repository, ADVISORY_LAG - 1))  # trailing by more than a plain turn leaves it

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


# -- symlinks and hard links ------------------------------------------------------------------


def other_session(store: Path) -> None:
    file_session(store, "s2")  # a healthy neighbour: checked whatever happens to s1


def test_a_symlinked_quarantine_is_refused_and_nothing_leaves_the_store(store: Path, tmp_path: Path) -> None:
    file_session(store)
    outside = tmp_path / "outside"
    outside.mkdir()
    (store / ".quarantine").symlink_to(outside)
    torn = message_file(store, 2)
    torn.write_text("{")

    report = check(store, session_id=None)
    [link] = [p for p in report.problems if p.kind == "symlink"]
    assert link.location == str(store / ".quarantine") and link.severity == "error"

    repaired = check(store, repair=True, session_id=None)
    assert [r.action for r in repaired.repairs if r.message_id == 2] == ["skipped"]
    assert "symlink" in repaired.repairs[0].detail
    assert list(outside.iterdir()) == []  # nothing created or moved through the link
    assert torn.read_text() == "{"  # and nothing changed without a place to keep it
    assert not repaired.ok

    (store / ".quarantine").unlink()
    assert check(store, repair=True).ok and list(outside.iterdir()) == []


def test_a_symlinked_session_directory_is_reported_and_the_rest_is_checked(store: Path, tmp_path: Path) -> None:
    file_session(store)
    other_session(store)
    elsewhere = tmp_path / "elsewhere"
    file_session(elsewhere, "real")
    (store / "session_evil").symlink_to(elsewhere / "session_real", target_is_directory=True)

    report = check(store, session_id=None)
    [link] = report.errors
    assert (link.kind, link.session_id, link.location) == ("symlink", "evil", str(store / "session_evil"))
    assert report.messages == 12  # both real sessions were still read
    single = check(store, session_id="evil")  # no exception: reported like the store-wide check
    assert [(p.kind, p.location) for p in single.errors] == [("symlink", str(store / "session_evil"))]

    repaired = check(store, repair=True, session_id=None)
    assert repaired.repairs == [] and not repaired.ok  # left as it is: only the user knows what it is
    assert (store / "session_evil").is_symlink() and len(list((elsewhere / "session_real").rglob("*.json"))) == 8


def test_a_symlinked_agent_directory_is_reported(store: Path, tmp_path: Path) -> None:
    file_session(store)
    elsewhere = tmp_path / "elsewhere"
    converse(FileSessionManager(session_id="x", storage_dir=elsewhere))
    agents = store / "session_s1" / "agents"
    (agents / "agent_other").symlink_to(elsewhere / "session_x" / "agents" / "agent_default")

    report = check(store)
    [link] = report.errors
    assert (link.kind, link.agent_id, link.location) == ("symlink", "other", str(agents / "agent_other"))
    assert report.messages == 6  # the real agent was checked
    assert check(store, repair=True).repairs == []


def test_a_symlinked_message_file_is_moved_aside_as_the_link_itself(store: Path, tmp_path: Path) -> None:
    before = file_session(store)
    other_session(store)
    target = tmp_path / "secret.json"
    link = message_file(store, 3)
    target.write_bytes(link.read_bytes())
    link.unlink()
    link.symlink_to(target)

    with pytest.raises(CorruptRecordError, match="symlink"):
        loaded(FileSessionManager(session_id="s1", storage_dir=store))

    report = check(store, session_id=None)
    [found] = report.errors  # once, not again as the corrupt record the read refused
    assert (found.kind, found.message_id, found.location) == ("symlink", 3, str(link))
    assert found.fix is not None and "placeholder" in found.fix
    assert report.messages == 11  # the rest of the store was read

    repaired = check(store, repair=True, session_id=None)
    assert repaired.ok, repaired.to_dict()
    [moved] = [r for r in repaired.repairs if r.action == "quarantined"]
    assert moved.to is not None and Path(moved.to).is_symlink()  # the link was moved, not followed
    assert Path(moved.to).is_relative_to(store / ".quarantine")
    assert target.read_bytes() == moved_target_bytes(target)
    messages = loaded(FileSessionManager(session_id="s1", storage_dir=store))
    assert len(messages) == 6 and messages[:3] == before[:3] and messages[4:] == before[4:]


def moved_target_bytes(target: Path) -> bytes:
    data = target.read_bytes()
    assert json.loads(data)["message_id"] == 3  # still the file it was: never written through
    return data


def test_a_hard_linked_record_is_refused_on_load_unless_allowed(store: Path, tmp_path: Path) -> None:
    before = file_session(store)
    outside = tmp_path / "outside.json"
    os.link(message_file(store, 3), outside)

    with pytest.raises(CorruptRecordError, match=r"message_3\.json.*2 hard links"):
        loaded(FileSessionManager(session_id="s1", storage_dir=store))
    assert loaded(FileSessionManager(session_id="s1", storage_dir=store, allow_hard_links=True)) == before
    assert loaded(RepositorySessionManager("s1", open_repository(f"file://{store}?allow_hard_links=true"))) == before
    with pytest.raises(ConfigurationError, match="allow_hard_links"):
        open_repository(f"file://{store}?allow_hard_links=maybe")

    agent_record = store / "session_s1" / "agents" / "agent_default" / "agent.json"
    os.link(agent_record, tmp_path / "agent-copy.json")
    with pytest.raises(CorruptRecordError, match=r"agent\.json"):
        loaded(FileSessionManager(session_id="s1", storage_dir=store))


def test_a_hard_link_is_an_error_and_repair_moves_the_name_aside(store: Path, tmp_path: Path) -> None:
    before = file_session(store)
    outside = tmp_path / "outside.json"
    os.link(message_file(store, 3), outside)
    kept = outside.read_bytes()

    report = check(store)
    [found] = report.errors
    assert (found.kind, found.message_id, found.location) == ("hard-link", 3, str(message_file(store, 3)))
    allowed = run(verify_session(FileSessionRepository(store, allow_hard_links=True), "s1", inspector=None))
    assert allowed.ok
    repository = FileSessionRepository(store, allow_hard_links=True)
    warned = run(verify_session(repository, "s1", inspector=FileStoreInspector(repository)))
    assert warned.ok and [(p.kind, p.severity) for p in warned.problems] == [("hard-link", "warning")]

    repaired = check(store, repair=True)
    assert repaired.ok, repaired.to_dict()
    assert outside.read_bytes() == kept and outside.stat().st_nlink == 2  # the other name: in quarantine
    messages = loaded(FileSessionManager(session_id="s1", storage_dir=store))
    assert messages[:3] == before[:3] and messages[4:] == before[4:]
    assert messages[3] != before[3] and "moved to quarantine" in messages[3]["content"][0]["text"]


def test_the_second_link_of_a_publish_in_flight_is_not_a_hard_link(store: Path, tmp_path: Path) -> None:
    before = file_session(store)
    record = message_file(store, 3)
    # The shape of mooring's publish between its link and its unlink: a temp name beside it.
    os.link(record, record.with_name(".mooring-0123abcd.tmp"))
    assert loaded(FileSessionManager(session_id="s1", storage_dir=store)) == before
    assert check(store).problems == []
    # A third link is not a publish in flight.
    os.link(record, tmp_path / "outside.json")
    with pytest.raises(CorruptRecordError, match="3 hard links"):
        loaded(FileSessionManager(session_id="s1", storage_dir=store))


def test_readers_racing_appends_never_see_a_spurious_hard_link(store: Path) -> None:
    repository = FileSessionRepository(store, durability="none")
    writer_manager = FileSessionManager(session_id="race", storage_dir=store, durability="none")
    agent = Agent(
        agent_id="default", model=ScriptedModel(["ok"] * 150), session_manager=writer_manager, callback_handler=None
    )
    errors: list[BaseException] = []
    done = threading.Event()

    def read_while_writing() -> None:
        while not done.is_set():
            try:
                head = run(repository.message_head("race", "default", hint=None))
                run(repository.read_messages("race", "default", max(head - 2, 0), head))
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)
                return

    reader = threading.Thread(target=read_while_writing)
    reader.start()
    try:
        for n in range(150):
            agent(f"prompt {n}")
    finally:
        done.set()
        reader.join(timeout=120)
    assert errors == []
    assert run(repository.message_head("race", "default", hint=None)) == 300


# -- placeholders -----------------------------------------------------------------------------


def twenty_messages(store: Path) -> list[Message]:
    return converse(FileSessionManager(session_id="s1", storage_dir=store), [(f"q{i}", f"a{i}") for i in range(10)])


def test_one_truncated_record_among_twenty_leaves_nineteen_intact_and_a_placeholder(store: Path) -> None:
    before = twenty_messages(store)
    torn = message_file(store, 5)
    data = torn.read_bytes()
    torn.write_bytes(data[: len(data) // 2])

    plan = check(store)
    [corrupt] = plan.errors
    assert corrupt.message_id == 5 and corrupt.fix is not None and "at message 5" in corrupt.fix
    assert plan.messages == 19

    repaired = check(store, repair=True)
    assert repaired.ok, repaired.to_dict()
    assert [(r.action, r.message_id) for r in repaired.repairs] == [("quarantined", 5), ("placeholder", 5)]
    messages = loaded(FileSessionManager(session_id="s1", storage_dir=store))
    assert len(messages) == 20
    assert [m for i, m in enumerate(messages) if i != 5] == [m for i, m in enumerate(before) if i != 5]
    assert messages[5]["role"] == before[5]["role"] == "assistant"
    assert messages[5]["content"] == [{"text": "[mooring: message 5 could not be read and was moved to quarantine]"}]
    assert check(store).problems == []


@tool
def lookup(word: str) -> str:
    """Look a word up.

    Args:
        word: the word
    """
    return word.upper()


def tool_session(store: Path) -> list[Message]:
    responses: list[Any] = [
        "hello",
        [{"text": "Looking."}, tool_call("lookup", {"word": "sea"}, tool_use_id="tu-1")],
        "It is SEA.",
    ]
    agent = Agent(
        agent_id="default",
        model=ScriptedModel(responses),
        tools=[lookup],
        session_manager=FileSessionManager(session_id="s1", storage_dir=store),
        callback_handler=None,
    )
    agent("hi")
    agent("look up sea")
    return list(agent.messages)  # user, assistant, user, assistant toolUse, user toolResult, assistant


@pytest.mark.parametrize(
    ("lost", "role", "block"),
    [(3, "assistant", "toolUse"), (4, "user", "toolResult")],
    ids=["the-tool-call", "the-tool-result"],
)
def test_a_lost_half_of_a_tool_pair_gets_a_placeholder_that_keeps_the_pair(
    store: Path, lost: int, role: str, block: str
) -> None:
    before = tool_session(store)
    message_file(store, lost).write_text('{"message": {"role"')

    plan = check(store)
    assert [p.kind for p in plan.errors] == ["corrupt-record"]  # the partner is not judged on a guess
    repaired = check(store, repair=True)
    assert repaired.ok and repaired.remaining == [], repaired.to_dict()
    messages = loaded(FileSessionManager(session_id="s1", storage_dir=store))
    assert len(messages) == 6 and [m for i, m in enumerate(messages) if i != lost] == [
        m for i, m in enumerate(before) if i != lost
    ]
    placeholder = messages[lost]
    assert placeholder["role"] == role
    [pair] = [b[block] for b in placeholder["content"] if block in b]  # type: ignore[literal-required]
    assert pair["toolUseId"] == "tu-1"
    if block == "toolResult":
        assert pair["status"] == "error"
    else:
        assert pair["name"] == LOST_TOOL_NAME
