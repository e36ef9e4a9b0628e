"""A plain turn writes only its messages: the agent record's head hint and removed_message_count
may trail by less than ADVISORY_LAG, and a restore finds the exact window from the last
message's ``window_start`` (written after the turn's trim)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from mooring import Agent, SlidingWindowConversationManager, ToolContext, tool
from mooring.models import ScriptedModel, tool_call
from mooring.session import FileSessionManager, InMemorySessionRepository, RepositorySessionManager, open_repository
from mooring.session.records import ADVISORY_LAG, MOORING_KEY, WINDOW_START, MessageRecord
from mooring.session.verify import verify_session


class CountingRepository(InMemorySessionRepository):
    """Counts agent-record writes."""

    def __init__(self) -> None:
        super().__init__()
        self.agent_writes = 0

    async def update_agent(self, *args: Any, **kwargs: Any) -> Any:
        self.agent_writes += 1
        return await super().update_agent(*args, **kwargs)


def _agent(repo: InMemorySessionRepository, window: int = 10, **kwargs: Any) -> Agent:
    return Agent(
        model=ScriptedModel(["ok"], repeat_last=True),
        agent_id="a",
        session_manager=RepositorySessionManager("s", repo),
        conversation_manager=SlidingWindowConversationManager(window),
        callback_handler=None,
        **kwargs,
    )


def test_plain_turns_rewrite_the_agent_record_once_per_lag_and_restores_see_the_same_window() -> None:
    repo = CountingRepository()
    agent = _agent(repo)
    for turn in range(60):
        agent(f"question {turn}")
        # A new process at this point: the same window, the same offset, whatever the record says.
        again = _agent(repo)
        assert again.messages == agent.messages, turn
        assert again.conversation_manager.removed_message_count == agent.conversation_manager.removed_message_count
        record = asyncio.run(repo.read_agent("s", "a"))
        assert record is not None
        head = 2 * (turn + 1)
        assert head - ADVISORY_LAG < record.next_message_id <= head
    # 120 messages at 2 a turn: the record is rewritten every ADVISORY_LAG / 2 turns, not every turn.
    assert repo.agent_writes <= 120 // ADVISORY_LAG + 1, repo.agent_writes


def test_the_last_message_of_each_append_carries_the_window_start() -> None:
    repo = InMemorySessionRepository()
    agent = _agent(repo, window=4)
    for turn in range(5):
        agent(f"q{turn}")
    records = asyncio.run(repo.read_messages("s", "a"))
    carried = [r.message_id for r in records if WINDOW_START in r.extra]
    assert carried == [1, 3, 5, 7, 9]
    # The answer is written after the turn's trim, with the window the turn ends with.
    assert records[-1].extra[WINDOW_START] == agent.conversation_manager.removed_message_count == 6


def test_a_state_change_writes_the_record_in_the_same_turn() -> None:
    @tool
    def remember(value: str, tool_context: ToolContext) -> str:
        """Store a value."""
        tool_context.agent.state.set("value", value)
        return "stored"

    repo = CountingRepository()
    agent = Agent(
        model=ScriptedModel([[tool_call("remember", {"value": "v1"})], "done"]),
        agent_id="a",
        tools=[remember],
        session_manager=RepositorySessionManager("s", repo),
        callback_handler=None,
    )
    before = repo.agent_writes
    agent("remember v1")
    assert repo.agent_writes > before
    record = asyncio.run(repo.read_agent("s", "a"))
    assert record is not None and record.state == {"value": "v1"}


def test_an_implausible_window_start_is_ignored() -> None:
    repo = InMemorySessionRepository()
    agent = _agent(repo, window=4)
    for turn in range(3):
        agent(f"q{turn}")
    last = asyncio.run(repo.read_messages("s", "a"))[-1]
    for bogus in (999, -1, "2", None):
        record = MessageRecord(message_id=last.message_id, message=last.message, extra={WINDOW_START: bogus})
        asyncio.run(repo.update_message("s", "a", record))
        stored = asyncio.run(repo.read_agent("s", "a"))
        assert stored is not None
        again = _agent(repo, window=4)
        # Falls back to what the agent record says, never past the head or before it.
        expected = stored.conversation_manager_state["removed_message_count"]
        assert again.conversation_manager.removed_message_count == expected, bogus


def test_a_trailing_hint_is_not_a_verify_finding(tmp_path: Path) -> None:
    agent = Agent(
        model=ScriptedModel(["ok"], repeat_last=True),
        agent_id="a",
        session_manager=FileSessionManager(session_id="s", storage_dir=str(tmp_path)),
        conversation_manager=SlidingWindowConversationManager(10),
        callback_handler=None,
    )
    for turn in range(7):
        agent(f"q{turn}")
    stored = json.loads((tmp_path / "session_s" / "agents" / "agent_a" / "agent.json").read_text())
    assert stored[MOORING_KEY]["next_message_id"] < 14  # trailing, by design
    report = asyncio.run(verify_session(open_repository(f"file://{tmp_path}"), "s"))
    assert not [p for p in report.problems if p.kind == "head-mismatch"], report.problems


@pytest.mark.parametrize("window", [3, 10, 40])
def test_restarting_after_every_turn_with_tools_gives_the_model_the_same_input(window: int) -> None:
    @tool
    def echo(text: str) -> str:
        """Echo."""
        return text

    def script(turns: int) -> list[Any]:
        out: list[Any] = []
        for i in range(turns):
            if i % 3 == 0:
                out.append([tool_call("echo", {"text": f"t{i}"}, tool_use_id=f"use-{i}")])
            out.append(f"answer {i}")
        return out

    turns = 40
    repo_a, repo_b = InMemorySessionRepository(), InMemorySessionRepository()
    steady = Agent(
        model=ScriptedModel(script(turns)),
        agent_id="a",
        tools=[echo],
        session_manager=RepositorySessionManager("s", repo_a),
        conversation_manager=SlidingWindowConversationManager(window),
        callback_handler=None,
    )
    steady_inputs, restarted_inputs = [], []
    responses = script(turns)
    used = 0
    for i in range(turns):
        steady(f"q{i}")
        steady_inputs.append(steady.model.calls[-1].messages)  # type: ignore[attr-defined]
        count = 2 if i % 3 == 0 else 1
        model = ScriptedModel(responses[used : used + count])
        used += count
        fresh = Agent(
            model=model,
            agent_id="a",
            tools=[echo],
            session_manager=RepositorySessionManager("s", repo_b),
            conversation_manager=SlidingWindowConversationManager(window),
            callback_handler=None,
        )
        fresh(f"q{i}")
        restarted_inputs.append(model.calls[-1].messages)
    assert restarted_inputs == steady_inputs


def test_two_writers_taking_turns_leave_the_last_writers_window() -> None:
    repo = InMemorySessionRepository()
    first, second = _agent(repo, window=6), _agent(repo, window=6)
    for turn in range(30):
        writer = first if turn % 2 == 0 else second
        writer(f"q{turn}")
        again = _agent(repo, window=6)
        assert again.messages == writer.messages, turn


def test_a_held_answer_the_trim_removed_is_still_stored() -> None:
    @tool
    def noop() -> str:
        """Nothing."""
        return "done"

    repo = InMemorySessionRepository()
    agent = Agent(
        model=ScriptedModel([[tool_call("noop")], "answer"]),
        agent_id="a",
        tools=[noop],
        session_manager=RepositorySessionManager("s", repo),
        conversation_manager=SlidingWindowConversationManager(1),
        callback_handler=None,
    )
    agent("go")
    stored = [r.message for r in asyncio.run(repo.read_messages("s", "a"))]
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
    assert stored[-1]["content"] == [{"text": "answer"}]
    again = _agent(repo, window=1)
    assert again.messages == agent.messages


def test_a_failed_turn_takes_its_prompt_back_and_stores_nothing() -> None:
    from mooring.errors import ModelError

    repo = InMemorySessionRepository()
    agent = Agent(
        model=ScriptedModel(["first", ModelError("down")]),
        agent_id="a",
        session_manager=RepositorySessionManager("s", repo),
        callback_handler=None,
    )
    agent("one")
    with pytest.raises(ModelError):
        agent("two")
    assert [r.message_id for r in asyncio.run(repo.read_messages("s", "a"))] == [0, 1]
