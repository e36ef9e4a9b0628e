"""The child process the kill -9 trials run and kill, and the check of what they leave."""

from __future__ import annotations

import itertools
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mooring.types import tool_result_ids, tool_uses

#: argv: a storage directory or a sqlite:// URL, then "tools" or "plain".
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
if sys.argv[1].startswith("sqlite://"):
    from mooring.session import RepositorySessionManager, open_repository
    manager = RepositorySessionManager("crashy", open_repository(sys.argv[1]))
else:
    manager = FileSessionManager(session_id="crashy", storage_dir=sys.argv[1])
agent = Agent(model=ScriptedModel(script, delay=0.0005), agent_id="worker", tools=[slow_step], callback_handler=None,
              session_manager=manager)
print("ready", flush=True)
i = 0
while True:
    agent(f"turn {i}")
    i += 1
"""


def valid_alternation(messages: list[dict[str, Any]]) -> bool:
    for before, after in itertools.pairwise(messages):
        if before["role"] == after["role"]:
            return False
        if tool_uses(before) and sorted(tool_result_ids(after)) != sorted(u["toolUseId"] for u in tool_uses(before)):
            return False
    return not messages or (messages[-1]["role"] == "assistant" and not tool_uses(messages[-1]))


def run_and_kill(script: Path, store: str, mode: str, rng: random.Random) -> None:
    """Start the child on ``store``, let it run turns for up to 120 ms, then SIGKILL it."""
    child = subprocess.Popen([sys.executable, str(script), store, mode], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.random() * 0.12)
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate()  # reaps the child and closes its stdout pipe
