"""Summaries across real processes: two writers never summarize the same range; kill -9 mid-summary."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mooring import Agent, SummarizingConversationManager
from mooring.session import FileSessionManager

from helpers.conversation_models import lookup, tool_model

TESTS = Path(__file__).resolve().parents[1]
SRC = TESTS.parent / "src"

CHILD = r"""
import json, os, sys, time
from pathlib import Path
from mooring import Agent, SummarizingConversationManager
from mooring.session import FileSessionManager
from helpers.conversation_models import lookup, prompts_in, respond

store, name, turns, log, block_from = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5])
current = {"turn": 0}

def on_summary(covered):
    with log.open("a") as out:
        out.write(json.dumps({"pid": os.getpid(), "prompts": prompts_in(covered, summaries=False)}) + "\n")
    if 0 <= block_from <= current["turn"]:
        (log.parent / "summarizing").write_text(str(os.getpid()))
        time.sleep(600)  # the summarization call hangs until the process is killed

def model(messages, specs, system):
    return respond(messages, specs, system, on_summary=on_summary)

from mooring.models import ScriptedModel
agent = Agent(
    model=ScriptedModel([model], repeat_last=True),
    agent_id="assistant",
    tools=[lookup],
    conversation_manager=SummarizingConversationManager(max_context_tokens=3000, preserve_recent_messages=6),
    session_manager=FileSessionManager(session_id="shared", storage_dir=store, lease_wait=300),
    callback_handler=None,
)
print("ready", flush=True)
for turn in range(turns):
    current["turn"] = turn
    agent(f"{name}-turn {turn}")
print("done", flush=True)
"""


def _child(
    tmp_path: Path, store: Path, name: str, turns: int, log: Path, block_from: int = -1
) -> subprocess.Popen[str]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS)])}
    return subprocess.Popen(
        [sys.executable, str(script), str(store), name, str(turns), str(log), str(block_from)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def _stored(store: Path) -> list[dict[str, Any]]:
    directory = store / "session_shared" / "agents" / "agent_assistant" / "messages"
    count = len([p for p in directory.iterdir() if p.name.startswith("message_")])
    return [json.loads((directory / f"message_{i}.json").read_text())["message"] for i in range(count)]


def _manager() -> SummarizingConversationManager:
    return SummarizingConversationManager(max_context_tokens=3000, preserve_recent_messages=6)


def test_two_processes_never_summarize_the_same_messages(tmp_path: Path) -> None:
    store, log = tmp_path / "store", tmp_path / "summaries.jsonl"
    turns = 60
    children = [_child(tmp_path, store, f"p{i}", turns, log) for i in range(2)]
    for child in children:
        out, _ = child.communicate(timeout=600)
        assert child.returncode == 0 and out.split() == ["ready", "done"]
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert {e["pid"] for e in entries} == {c.pid for c in children}  # both processes summarized
    seen: dict[str, int] = {}
    for number, entry in enumerate(entries):
        for prompt in entry["prompts"]:
            assert prompt not in seen, f"{prompt!r} summarized twice (summaries {seen[prompt]} and {number})"
            seen[prompt] = number
    prompts = [m["content"][0]["text"] for m in _stored(store) if m["role"] == "user" and "text" in m["content"][0]]
    assert sorted(prompts) == sorted(f"p{i}-turn {t}" for i in range(2) for t in range(turns))
    # The stored summary chain covers the oldest prompts, each once, in store order.
    assert list(seen) == prompts[: len(seen)]


def test_kill_nine_during_a_summarization_call(tmp_path: Path) -> None:
    store, log = tmp_path / "store", tmp_path / "summaries.jsonl"
    child = _child(tmp_path, store, "p0", 200, log, block_from=20)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 300
        while not (tmp_path / "summarizing").exists():
            assert child.poll() is None, "the child ended before summarizing"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        before = json.loads((store / "session_shared" / "agents" / "agent_assistant" / "agent.json").read_text())
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    killed = _stored(store)
    model = tool_model()
    agent = Agent(
        model=model,
        agent_id="assistant",
        tools=[lookup],
        conversation_manager=_manager(),
        session_manager=FileSessionManager(session_id="shared", storage_dir=store, lease_wait=30),
        callback_handler=None,
    )
    manager = agent.conversation_manager
    assert isinstance(manager, SummarizingConversationManager)
    # The killed call left the manager state as the last finished turn wrote it.
    assert manager.get_state()["summary_message"] == before["conversation_manager_state"]["summary_message"]
    assert manager.removed_message_count == before["conversation_manager_state"]["removed_message_count"]
    # Every stored message is still there; the open turn was closed; the window is the summary
    # plus exactly the stored messages after the offset.
    stored = _stored(store)
    assert stored[: len(killed)] == killed
    assert agent.messages == [*manager.prefix_messages(), *stored[manager.removed_message_count :]]
    result = agent("turn 999")
    assert str(result).startswith("answered")
    after = _stored(store)
    assert after[: len(stored)] == stored
    assert after[-1]["content"][0]["text"] == str(result)
