"""The same-session trial: N real processes x M agent turns on one session, nothing lost.

This is the result the concurrency protocol promises (conditional appends, versioned
records, the invocation lease), checked end to end through the public ``Agent`` API. Each
process runs an agent on the same session and agent id; every turn is a prompt, a tool call,
its result and a reply, all tagged with the turn's name. Afterwards the session is read back
and must hold:

- every message exactly once, with dense ids from 0;
- each user turn followed by its own tool call, tool result and reply;
- in ``agent.state``, a shared counter that saw every turn and each process's own key its
  count of turns (state merges by key).

A backend proves it with one subclass of :class:`SameSessionTrialContract`::

    import pytest
    from mooring.testing import SameSessionTrialContract

    @pytest.mark.slow  # if your suite has such a marker; the trial takes a while
    class TestMyBackendSameSession(SameSessionTrialContract):
        @pytest.fixture
        def trial_store(self, tmp_path):
            return f"mybackend:///{tmp_path}/store"  # a URL that open_repository() understands

or, for a backend without a URL scheme, a picklable factory (a module-level function, a
``functools.partial`` of one, or an instance of a module-level class)::

    def make_repository(path):
        return MyRepository(path)

    class TestMyBackendSameSession(SameSessionTrialContract):
        trial_processes = 4  # the defaults are 8 processes x 25 turns

        @pytest.fixture
        def trial_store(self, tmp_path):
            return functools.partial(make_repository, tmp_path / "store")

The processes are real (``multiprocessing`` with the ``spawn`` start method), so the store
must be reachable from another process: no in-memory repository. :func:`run_same_session_trial`
runs the same trial outside pytest and returns a :class:`TrialReport`.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import queue
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

from mooring.agent import Agent, ToolContext, tool
from mooring.models import message_to_events
from mooring.session.manager import RepositorySessionManager
from mooring.session.repository import SessionRepository
from mooring.session.url import open_repository
from mooring.types import Message, StreamEvent

RepositoryFactory = Callable[[], SessionRepository]
TrialStore = str | RepositoryFactory
"""A store URL for :func:`mooring.session.open_repository`, or a picklable factory."""

AGENT_ID = "shared"
MESSAGES_PER_TURN = 4  # prompt, toolUse, toolResult, reply


@dataclass(kw_only=True)
class TrialReport:
    """What a trial found. ``problems`` is empty when nothing was lost, doubled or misordered."""

    processes: int
    turns: int
    messages: int
    counter: Any
    wall_seconds: float
    problems: list[str] = field(default_factory=list)


class _TurnModel:
    """Asks for the ``bump`` tool with the prompt as its tag, then answers ``done: <tag>``."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    async def stream(
        self,
        messages: Sequence[Message],
        tool_specs: Sequence[dict[str, Any]] | None = None,
        system_prompt: str | None = None,
    ) -> AsyncIterator[StreamEvent]:
        if self.delay:
            await asyncio.sleep(self.delay)
        last: Any = messages[-1]
        result = next((b["toolResult"] for b in last["content"] if "toolResult" in b), None)
        reply: dict[str, Any]
        if result is not None:
            reply = {"role": "assistant", "content": [{"text": "done: " + result["content"][0]["text"]}]}
        else:
            tag = last["content"][0]["text"]
            use = {"toolUseId": f"use-{tag}", "name": "bump", "input": {"tag": tag}}
            reply = {"role": "assistant", "content": [{"toolUse": use}]}
        for event in message_to_events(reply):
            yield event


def _open(store: TrialStore) -> SessionRepository:
    return open_repository(store) if isinstance(store, str) else store()


def _run_turns(store: TrialStore, session_id: str, index: int, turns: int, delay: float) -> None:
    @tool
    def bump(tag: str, tool_context: ToolContext) -> str:
        """Count one turn in the shared and the per-process state keys."""
        state = tool_context.agent.state
        state.set("counter", int(state.get("counter") or 0) + 1)
        state.set(f"w{index}", int(state.get(f"w{index}") or 0) + 1)
        return tag

    repository = _open(store)
    try:
        manager = RepositorySessionManager(session_id, repository, lease_wait=300)
        agent = Agent(
            model=_TurnModel(delay), agent_id=AGENT_ID, tools=[bump], session_manager=manager, callback_handler=None
        )
        for turn in range(turns):
            agent(f"w{index}-t{turn}")
    finally:
        asyncio.run(repository.close())


def _worker(store: TrialStore, session_id: str, index: int, turns: int, delay: float, start: Any, results: Any) -> None:
    # Runs in a spawned process: report the outcome on the queue rather than through the exit
    # code alone, so the parent can show what went wrong.
    try:
        start.wait(timeout=300)  # every process starts its turns together, for maximum contention
        _run_turns(store, session_id, index, turns, delay)
    except BaseException:
        results.put((index, traceback.format_exc()))
        raise
    results.put((index, None))


def _turn_is_whole(tag: str, rest: Sequence[Any]) -> bool:
    if len(rest) < 3 or [m["role"] for m in rest] != ["assistant", "user", "assistant"]:
        return False
    use, result, reply = (m["content"][0] for m in rest)
    return bool(
        use.get("toolUse", {}).get("input", {}).get("tag") == tag
        and result.get("toolResult", {}).get("content", [{}])[0].get("text") == tag
        and reply.get("text") == f"done: {tag}"
    )


def check_same_session(store: TrialStore, session_id: str, *, processes: int, turns: int) -> TrialReport:
    """Read a trial's session back and list every way it falls short (``wall_seconds`` is 0)."""

    async def read() -> tuple[list[Any], Any]:
        repository = _open(store)
        try:
            return await repository.read_messages(session_id, AGENT_ID), await repository.read_agent(
                session_id, AGENT_ID
            )
        finally:
            await repository.close()

    records, agent = asyncio.run(read())
    problems: list[str] = []
    ids = [r.message_id for r in records]
    if ids != list(range(len(ids))):
        problems.append(f"ids are not dense: {ids[:20]}...")
    messages: list[Any] = [r.to_message() for r in records]
    seen: dict[str, int] = {}
    i = 0
    while i < len(messages):
        first = messages[i]
        if first["role"] != "user" or "text" not in first["content"][0]:
            problems.append(f"message {i} should start a turn, found {json.dumps(first, default=str)[:120]}")
            i += 1
            continue
        tag = first["content"][0]["text"]
        seen[tag] = seen.get(tag, 0) + 1
        if not _turn_is_whole(tag, messages[i + 1 : i + MESSAGES_PER_TURN]):
            problems.append(f"turn {tag!r} at message {i} is not followed by its own tool call and reply")
        i += MESSAGES_PER_TURN
    want = {f"w{p}-t{t}" for p in range(processes) for t in range(turns)}
    missing = sorted(want - set(seen))
    duplicated = sorted(tag for tag, n in seen.items() if n > 1)
    if missing:
        problems.append(f"{len(missing)} turns lost, e.g. {missing[:5]}")
    if duplicated:
        problems.append(f"{len(duplicated)} turns duplicated, e.g. {duplicated[:5]}")
    expected = MESSAGES_PER_TURN * processes * turns
    if len(messages) != expected:
        problems.append(f"{len(messages)} messages stored, expected {expected}")
    state = agent.state if agent is not None else {}
    if state.get("counter") != processes * turns:
        problems.append(f"state counter is {state.get('counter')}, expected {processes * turns}")
    for p in range(processes):
        if state.get(f"w{p}") != turns:
            problems.append(f"state key w{p} is {state.get(f'w{p}')}, expected {turns}")
    return TrialReport(
        processes=processes,
        turns=turns,
        messages=len(messages),
        counter=state.get("counter"),
        wall_seconds=0.0,
        problems=problems,
    )


def run_same_session_trial(
    store: TrialStore,
    session_id: str,
    *,
    processes: int = 8,
    turns: int = 25,
    delay: float = 0.0,
    timeout: float = 600.0,
) -> TrialReport:
    """Run ``processes`` spawned processes of ``turns`` turns each on ``session_id``, then check it.

    ``store`` is a store URL or a picklable zero-argument factory of the repository; each
    process opens its own. ``delay`` makes every model call sleep that long (longer turns,
    more waiting on the lease). ``timeout`` bounds the whole run; a process still running
    then is killed and reported. ``wall_seconds`` is informational only.

    Example::

        report = run_same_session_trial("sqlite:////tmp/trial.db", "busy", processes=4, turns=10)
        assert report.problems == [], report.problems
    """
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(processes)
    results = context.Queue()
    children = [
        context.Process(
            target=_worker,
            args=(store, session_id, i, turns, delay, start, results),
            name=f"mooring-trial-{i}",
            daemon=True,
        )
        for i in range(processes)
    ]
    started = time.monotonic()
    for child in children:
        child.start()
    deadline = started + timeout
    outcomes: dict[int, str | None] = {}
    # Drain the queue before joining: a child exits only once what it put there was read.
    while len(outcomes) < processes and time.monotonic() < deadline:
        try:
            index, error = results.get(timeout=0.5)
        except queue.Empty:
            if not any(child.is_alive() for child in children):
                break
            continue
        outcomes[index] = error
    failures: list[str] = []
    for i, child in enumerate(children):
        child.join(timeout=max(1.0, deadline - time.monotonic()))
        if child.is_alive():
            child.kill()
            child.join()
            failures.append(f"process {i} did not finish within {timeout}s and was killed")
            continue
        error = outcomes.get(i)
        if error is not None:
            failures.append(f"process {i} failed: {error.strip().splitlines()[-1]}")
        elif child.exitcode != 0 or i not in outcomes:
            failures.append(f"process {i} exited with code {child.exitcode} without reporting")
    wall = time.monotonic() - started
    results.close()
    report = check_same_session(store, session_id, processes=processes, turns=turns)
    report.wall_seconds = wall
    report.problems[:0] = failures
    return report


class SameSessionTrialContract:
    """Subclass and provide a ``trial_store`` fixture: a store URL or a picklable repository factory.

    The store must start empty of the trial's session (a fresh directory, schema, key prefix
    or bucket); the trial uses a random session id anyway. Tune the size with the class
    attributes ``trial_processes`` and ``trial_turns``.
    """

    trial_processes: ClassVar[int] = 8
    trial_turns: ClassVar[int] = 25
    trial_timeout: ClassVar[float] = 600.0

    @pytest.fixture
    def trial_store(self) -> TrialStore:
        raise NotImplementedError("subclasses provide a 'trial_store' fixture (a store URL or a repository factory)")

    def test_processes_share_one_session(self, trial_store: TrialStore) -> None:
        processes, turns = self.trial_processes, self.trial_turns
        session_id = f"trial-{uuid.uuid4().hex[:12]}"
        report = run_same_session_trial(
            trial_store, session_id, processes=processes, turns=turns, timeout=self.trial_timeout
        )
        assert report.problems == []
        assert report.messages == MESSAGES_PER_TURN * processes * turns
        assert report.counter == processes * turns
