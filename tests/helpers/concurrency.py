"""Same-session concurrency trials: N real processes x M turns through the public Agent API.

``run_trial(store_url, ...)`` starts the processes (``python -m helpers.concurrency``), waits
for them, reads the session back through ``open_repository`` and checks it:

- every message present exactly once, ids dense;
- every turn stored as [prompt, toolUse, toolResult, reply], in that order, with its own tag;
- ``agent.state``: the shared counter saw every increment, each worker's own key its count.

Used by each backend's tests; the model is a deterministic in-process one (no network).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TESTS_DIR = Path(__file__).resolve().parents[1]


@dataclass
class TrialReport:
    processes: int
    turns: int
    wall_seconds: float
    messages: int
    problems: list[str] = field(default_factory=list)
    counter: Any = None


class TurnModel:
    """Asks for the ``bump`` tool with the prompt as its tag, then answers ``done: <tag>``."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    async def stream(
        self, messages: Sequence[Any], tool_specs: Any = None, system_prompt: Any = None
    ) -> AsyncIterator[dict[str, Any]]:
        from mooring.models import message_to_events

        if self.delay:
            await asyncio.sleep(self.delay)
        last = messages[-1]
        result = next((b["toolResult"] for b in last["content"] if "toolResult" in b), None)
        if result is not None:
            reply: dict[str, Any] = {
                "role": "assistant",
                "content": [{"text": "done: " + result["content"][0]["text"]}],
            }
        else:
            tag = last["content"][0]["text"]
            reply = {
                "role": "assistant",
                "content": [{"toolUse": {"toolUseId": f"use-{tag}", "name": "bump", "input": {"tag": tag}}}],
            }
        for event in message_to_events(reply):
            yield event


def worker(store_url: str, session_id: str, index: int, turns: int, delay: float) -> None:
    from mooring import Agent, ToolContext, tool
    from mooring.session import RepositorySessionManager, open_repository

    @tool
    def bump(tag: str, tool_context: ToolContext) -> str:
        """Count one turn in the shared and the per-worker state keys."""
        state = tool_context.agent.state
        state.set("counter", int(state.get("counter") or 0) + 1)
        state.set(f"w{index}", int(state.get(f"w{index}") or 0) + 1)
        return tag

    manager = RepositorySessionManager(session_id, open_repository(store_url), lease_wait=300)
    agent = Agent(
        model=TurnModel(delay),
        agent_id="shared",
        tools=[bump],
        session_manager=manager,
        callback_handler=None,
    )
    for turn in range(turns):
        agent(f"w{index}-t{turn}")


def _turn_is_whole(tag: str, rest: list[Any]) -> bool:
    if len(rest) < 3 or [m["role"] for m in rest] != ["assistant", "user", "assistant"]:
        return False
    use, result, reply = (m["content"][0] for m in rest)
    return bool(
        use.get("toolUse", {}).get("input", {}).get("tag") == tag
        and result.get("toolResult", {}).get("content", [{}])[0].get("text") == tag
        and reply.get("text") == f"done: {tag}"
    )


def check_session(store_url: str, session_id: str, processes: int, turns: int) -> tuple[int, list[str], Any]:
    from mooring.session import open_repository

    async def read() -> tuple[list[Any], Any]:
        repo = open_repository(store_url)
        try:
            records = await repo.read_messages(session_id, "shared")
            agent = await repo.read_agent(session_id, "shared")
            return records, agent
        finally:
            await repo.close()

    records, agent = asyncio.run(read())
    problems: list[str] = []
    ids = [r.message_id for r in records]
    if ids != list(range(len(ids))):
        problems.append(f"ids are not dense: {ids[:20]}...")
    messages = [r.to_message() for r in records]
    seen: dict[str, int] = {}
    i = 0
    while i < len(messages):
        m = messages[i]
        if m["role"] != "user" or "text" not in m["content"][0]:
            problems.append(f"message {i} should start a turn, found {json.dumps(m)[:120]}")
            i += 1
            continue
        tag = m["content"][0]["text"]
        seen[tag] = seen.get(tag, 0) + 1
        if not _turn_is_whole(tag, messages[i + 1 : i + 4]):
            problems.append(f"turn {tag!r} at message {i} is not followed by its own tool call and reply")
        i += 4
    want = {f"w{p}-t{t}" for p in range(processes) for t in range(turns)}
    missing = sorted(want - set(seen))
    duplicated = sorted(tag for tag, n in seen.items() if n > 1)
    if missing:
        problems.append(f"{len(missing)} turns lost, e.g. {missing[:5]}")
    if duplicated:
        problems.append(f"{len(duplicated)} turns duplicated, e.g. {duplicated[:5]}")
    if len(messages) != 4 * processes * turns:
        problems.append(f"{len(messages)} messages stored, expected {4 * processes * turns}")
    state = agent.state if agent is not None else {}
    if state.get("counter") != processes * turns:
        problems.append(f"state counter is {state.get('counter')}, expected {processes * turns}")
    for p in range(processes):
        if state.get(f"w{p}") != turns:
            problems.append(f"state key w{p} is {state.get(f'w{p}')}, expected {turns}")
    return len(messages), problems, state.get("counter")


def run_trial(
    store_url: str, session_id: str, *, processes: int = 8, turns: int = 25, delay: float = 0.0, timeout: float = 600
) -> TrialReport:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    started = time.monotonic()
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "helpers.concurrency", store_url, session_id, str(i), str(turns), str(delay)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    failures = []
    for i, child in enumerate(children):
        try:
            _, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            _, err = child.communicate()
            failures.append(f"worker {i} timed out")
        if child.returncode != 0:
            failures.append(f"worker {i} exited {child.returncode}: {err.strip().splitlines()[-1:] if err else ''}")
    wall = time.monotonic() - started
    count, problems, counter = check_session(store_url, session_id, processes, turns)
    return TrialReport(processes, turns, wall, count, failures + problems, counter)


if __name__ == "__main__":
    url, sid, idx, n, d = sys.argv[1:6]
    worker(url, sid, int(idx), int(n), float(d))
