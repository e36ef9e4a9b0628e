"""``agent.state`` changed outside an invocation is stored at once (nothing is lost at exit);
inside an invocation it rides the turn's agent-record write."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from mooring import Agent, ToolContext, tool
from mooring.models import ScriptedModel, tool_call
from mooring.session import FileSessionManager, InMemorySessionRepository, RepositorySessionManager, SessionRepository


class CountingRepository(InMemorySessionRepository):
    def __init__(self) -> None:
        super().__init__()
        self.agent_updates = 0

    async def update_agent(self, session_id: str, record: Any, *, expected_version: int) -> Any:
        self.agent_updates += 1
        return await super().update_agent(session_id, record, expected_version=expected_version)


def _agent(repository: SessionRepository, **kwargs: Any) -> Agent:
    return Agent(
        model=kwargs.pop("model", "offline"),
        agent_id="assistant",
        callback_handler=None,
        session_manager=RepositorySessionManager("s1", repository),
        **kwargs,
    )


def test_a_state_change_made_in_a_process_that_then_exits_is_stored(tmp_path: Path) -> None:
    program = textwrap.dedent(
        f"""
        from mooring import Agent
        from mooring.session import FileSessionManager

        agent = Agent(agent_id="assistant", callback_handler=None,
                      session_manager=FileSessionManager(session_id="s1", storage_dir={str(tmp_path)!r}))
        agent.state.set("theme", "dark")
        agent.state.set("doomed", 1)
        agent.state.delete("doomed")
        """
    )
    subprocess.run([sys.executable, "-c", program], check=True, timeout=300)

    restored = Agent(
        agent_id="assistant",
        callback_handler=None,
        session_manager=FileSessionManager(session_id="s1", storage_dir=str(tmp_path)),
    )
    assert restored.state.get() == {"theme": "dark"}


def test_two_agents_changing_different_keys_between_turns_keep_both() -> None:
    repository = InMemorySessionRepository()
    first = _agent(repository)
    second = Agent(
        agent_id="assistant", callback_handler=None, session_manager=RepositorySessionManager("s1", repository)
    )

    first.state.set("a", 1)
    second.state.set("b", 2)  # its view of the record is stale: compare-and-set, merged by key
    first.state.set("c", 3)

    third = Agent(
        agent_id="assistant", callback_handler=None, session_manager=RepositorySessionManager("s1", repository)
    )
    assert third.state.get() == {"a": 1, "b": 2, "c": 3}


def test_a_write_through_keeps_the_turns_another_process_stored_meanwhile() -> None:
    repository = InMemorySessionRepository()
    idle = _agent(repository)
    busy = Agent(
        agent_id="assistant", callback_handler=None, session_manager=RepositorySessionManager("s1", repository)
    )
    busy("first turn")
    busy("second turn")

    idle.state.set("k", "v")  # idle never saw those turns; its write must not rewind the record

    fresh = Agent(
        agent_id="assistant", callback_handler=None, session_manager=RepositorySessionManager("s1", repository)
    )
    assert len(fresh.messages) == 4
    assert fresh.state.get("k") == "v"
    idle("third turn")  # and the idle agent catches up before its own turn
    assert len(idle.messages) == 6


def test_changes_inside_an_invocation_are_batched_not_written_one_by_one() -> None:
    @tool
    def remember(n: int, tool_context: ToolContext) -> str:
        """Remember n."""
        for i in range(n):
            tool_context.agent.state.set(f"k{i}", i)
        return "ok"

    repository = CountingRepository()
    model = ScriptedModel([[tool_call("remember", {"n": 5}, "t1")], "done"])
    agent = _agent(repository, model=model, tools=[remember])
    before = repository.agent_updates

    agent("remember five things")

    # Stored with the tool result and at the end of the turn: not once per set (n=5).
    assert repository.agent_updates - before <= 2
    assert Agent(
        agent_id="assistant", callback_handler=None, session_manager=RepositorySessionManager("s1", repository)
    ).state.get() == {f"k{i}": i for i in range(5)}


def test_a_store_failure_on_write_through_reaches_the_caller_and_the_change_stays_pending(
    tmp_path: Path,
) -> None:
    from mooring.errors import SessionNotFoundError

    repository = InMemorySessionRepository()
    agent = _agent(repository)
    import asyncio

    asyncio.run(repository.delete_session("s1"))
    with pytest.raises(SessionNotFoundError, match="state change was not stored"):
        agent.state.set("x", 1)
    assert agent.state.get("x") == 1
    assert "x" in agent.state.dirty_keys()
