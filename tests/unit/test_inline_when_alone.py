"""The file backend runs its calls in place while the invocation is the only task on its loop
(a synchronous ``agent(prompt)``), and hands fsyncing calls to the I/O pool otherwise."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from mooring import Agent
from mooring.models.scripted import ScriptedModel
from mooring.session import RepositorySessionManager, _threaded, open_repository


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = _threaded.run_blocking

    async def counting(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        seen.append(getattr(args[0], "__name__", "?"))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(_threaded, "run_blocking", counting)
    return seen


def _agent(store: Path, replies: int) -> Agent:
    return Agent(
        model=ScriptedModel([f"reply {i}" for i in range(replies)]),
        agent_id="a",
        callback_handler=None,
        session_manager=RepositorySessionManager("s", open_repository(f"file://{store}")),
    )


def test_a_synchronous_turn_makes_no_thread_hop(tmp_path: Path, hops: list[str]) -> None:
    agent = _agent(tmp_path, 2)
    agent("first")
    hops.clear()
    agent("second")
    assert hops == []
    again = _agent(tmp_path, 0)  # and the turn is stored as usual
    assert [m["content"][0]["text"] for m in again.messages] == ["first", "reply 0", "second", "reply 1"]


def test_with_other_tasks_on_the_loop_fsyncing_calls_leave_it(tmp_path: Path, hops: list[str]) -> None:
    agent = _agent(tmp_path, 1)

    async def main() -> None:
        other = asyncio.create_task(asyncio.sleep(30))  # someone else the loop must keep serving
        try:
            await agent.invoke_async("hello")
        finally:
            other.cancel()

    hops.clear()
    asyncio.run(main())
    assert "_append_messages" in hops, hops
