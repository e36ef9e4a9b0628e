"""kill -9 at random moments of running turns: the session always loads and the next turn works."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mooring import Agent
from mooring.models import ScriptedModel
from mooring.session import FileSessionManager
from mooring.types import tool_result_ids, tool_uses

CHILD = r"""
import random, sys, time
from mooring import Agent, tool
from mooring.models import ScriptedModel, tool_call
from mooring.session import FileSessionManager

@tool
def slow_step(n: int) -> int:
    '''Sleep a little, as a real tool would.'''
    time.sleep(random.random() * 0.004)
    state = agent.state
    state.set("steps", int(state.get("steps") or 0) + 1)
    return n

# "tools": every turn calls a tool that changes agent.state (the agent record is written
# each turn); "plain": four turns in five are a bare answer (only messages are written, the
# agent record trails them).
plain = sys.argv[2] == "plain"
script = []
for i in range(10_000):
    if plain and i % 5:
        script.append(f"answer {i}")
    else:
        script += [[tool_call("slow_step", {"n": i})], f"answer {i}"]
agent = Agent(model=ScriptedModel(script, delay=0.0005), agent_id="worker", tools=[slow_step], callback_handler=None,
              session_manager=FileSessionManager(session_id="crashy", storage_dir=sys.argv[1]))
print("ready", flush=True)
i = 0
while True:
    agent(f"turn {i}")
    i += 1
"""


def _scan_for_torn_records(root: Path) -> list[str]:
    torn = []
    for path in root.rglob("*.json"):
        try:
            json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError):
            torn.append(str(path))
    return torn


def _valid_alternation(messages: list[dict]) -> bool:
    for before, after in itertools.pairwise(messages):
        if before["role"] == after["role"]:
            return False
        if tool_uses(before) and sorted(tool_result_ids(after)) != sorted(u["toolUseId"] for u in tool_uses(before)):
            return False
    return not messages or (messages[-1]["role"] == "assistant" and not tool_uses(messages[-1]))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["tools", "plain"])
def test_one_hundred_kill_nine_trials(tmp_path: Path, mode: str) -> None:
    rng = random.Random(20261126)
    store = tmp_path / "store"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    trials = int(os.environ.get("MOORING_CRASH_TRIALS", "100"))
    repaired = 0
    for trial in range(trials):
        child = subprocess.Popen([sys.executable, str(script), str(store), mode], stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
            time.sleep(rng.random() * 0.12)
        finally:
            child.send_signal(signal.SIGKILL)
            child.communicate()  # reaps the child and closes its stdout pipe

        assert _scan_for_torn_records(store) == [], f"trial {trial}: torn record"
        manager = FileSessionManager(session_id="crashy", storage_dir=store, durability="none")
        agent = Agent(
            model=ScriptedModel([f"after crash {trial}"]),
            agent_id="worker",
            session_manager=manager,
            callback_handler=None,
        )
        if any(m["content"][0].get("text", "").startswith("[mooring]") for m in agent.messages[-1:]):
            repaired += 1
        assert _valid_alternation(agent.messages), f"trial {trial}: restored history is not a valid conversation"
        assert str(agent(f"check {trial}")) == f"after crash {trial}"
        # A finished turn leaves the window (40 by default), whether the record was current or
        # trailing; a restore between two kills holds what the unfinished turns stored since.
        assert len(agent.messages) <= 40, f"trial {trial}: {len(agent.messages)} messages after a turn"

        head = len(list((store / "session_crashy" / "agents" / "agent_worker" / "messages").glob("message_*.json")))
        names = {
            p.name for p in (store / "session_crashy" / "agents" / "agent_worker" / "messages").glob("message_*.json")
        }
        assert names == {f"message_{i}.json" for i in range(head)}, f"trial {trial}: ids are not dense"
    # Some kills must have landed mid-tool, or the trial did not test the repair path.
    assert repaired > 0
