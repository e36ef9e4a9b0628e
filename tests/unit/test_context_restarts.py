"""What the model is sent does not depend on restarts, and a token budget holds on every call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mooring import (
    Agent,
    NullConversationManager,
    SlidingWindowConversationManager,
    SummarizingConversationManager,
)
from mooring._sync import run_sync
from mooring.agent.conversation import ConversationManager
from mooring.models import ScriptedModel
from mooring.session import FileSessionManager

from helpers.conversation_models import call_hash, lookup, provider_tokens, tool_model

MANAGERS: dict[str, Callable[[], ConversationManager]] = {
    "null": NullConversationManager,
    "sliding": lambda: SlidingWindowConversationManager(24, max_context_tokens=3000, pin_first_messages=1),
    "summarizing": lambda: SummarizingConversationManager(
        max_context_tokens=3000, preserve_recent_messages=6, pin_first_messages=2
    ),
}


def _agent(storage: Path, model: ScriptedModel, manager: ConversationManager) -> Agent:
    return Agent(
        model=model,
        agent_id="assistant",
        tools=[lookup],
        conversation_manager=manager,
        session_manager=FileSessionManager(session_id="long", storage_dir=storage, durability="none"),
        callback_handler=None,
    )


def _run(storage: Path, make: Callable[[], ConversationManager], turns: int, *, restart: bool) -> list[str]:
    """Hashes of every model call (summaries included); ``restart`` rebuilds everything between turns."""
    models: list[ScriptedModel] = []
    agent: Agent | None = None
    for turn in range(turns):
        if agent is None or restart:
            if agent is not None:
                _close(agent)  # the "process" ends: its store handles go with it
            models.append(tool_model())
            agent = _agent(storage, models[-1], make())
        agent(f"turn {turn}")
    if agent is not None:
        _close(agent)
    return [call_hash(call) for model in models for call in model.calls]


def _close(agent: Agent) -> None:
    assert isinstance(agent.session_manager, FileSessionManager)
    run_sync(agent.session_manager.repository.close())


def _check_restarts_change_nothing(tmp_path: Path, name: str, turns: int) -> None:
    make = MANAGERS[name]
    steady = _run(tmp_path / "steady", make, turns, restart=False)
    restarted = _run(tmp_path / "restarted", make, turns, restart=True)
    assert len(steady) >= 2 * turns
    first_difference = next((i for i, (a, b) in enumerate(zip(steady, restarted, strict=False)) if a != b), None)
    assert first_difference is None, f"call {first_difference} differs after a restart"
    assert steady == restarted


@pytest.mark.parametrize("name", list(MANAGERS))
def test_the_model_input_after_a_restart_is_what_it_would_have_been(tmp_path: Path, name: str) -> None:
    _check_restarts_change_nothing(tmp_path, name, 60)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MANAGERS))
def test_five_hundred_turns_with_a_restart_between_every_two(tmp_path: Path, name: str) -> None:
    _check_restarts_change_nothing(tmp_path, name, 500)


def test_the_summarizing_manager_did_summarize_in_the_restart_trial(tmp_path: Path) -> None:
    # The equivalence above means something only if summaries and cuts happened in it.
    model = tool_model()
    manager = MANAGERS["summarizing"]()
    agent = _agent(tmp_path, model, manager)
    for turn in range(60):
        agent(f"turn {turn}")
    assert isinstance(manager, SummarizingConversationManager)
    assert manager.summary_message is not None
    assert sum(1 for call in model.calls if call.system_prompt is not None) >= 3
    assert manager.removed_message_count > 100


@pytest.mark.parametrize(
    ("name", "turns"),
    [("summarizing", 300), ("sliding", 300), pytest.param("summarizing", 2000, marks=pytest.mark.slow)],
)
def test_a_long_tool_heavy_conversation_stays_under_the_budget_on_every_call(
    tmp_path: Path, name: str, turns: int
) -> None:
    budget = 3000
    model = tool_model()
    manager = MANAGERS[name]()
    agent = _agent(tmp_path, model, manager)
    for turn in range(turns):
        agent(f"turn {turn}")
    sent = [provider_tokens(c.messages, c.tool_specs, c.system_prompt) for c in model.calls if c.system_prompt is None]
    assert len(sent) == 2 * turns
    over = [(i, tokens) for i, tokens in enumerate(sent) if tokens > budget]
    assert not over, f"{len(over)} calls over the budget, first {over[0]}"
    # Without the manager the same conversation would be far over: the budget did the work.
    assert manager.removed_message_count > 4 * turns - 200


CHILD = r"""
import json, sys
from pathlib import Path
sys.path[:0] = [sys.argv[4], sys.argv[5]]
from test_context_restarts import MANAGERS, _agent
from helpers.conversation_models import call_hash, tool_model

model = tool_model()
agent = _agent(Path(sys.argv[1]), model, MANAGERS["summarizing"]())
for turn in range(int(sys.argv[2]), int(sys.argv[3])):
    agent(f"turn {turn}")
print(json.dumps([call_hash(call) for call in model.calls]))
"""


def test_real_process_restarts_change_nothing(tmp_path: Path) -> None:
    steady = _run(tmp_path / "steady", MANAGERS["summarizing"], 45, restart=False)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    tests = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(tests.parent / "src")}
    restarted: list[str] = []
    for first in range(0, 45, 15):
        out = subprocess.run(
            [
                sys.executable,
                str(script),
                str(tmp_path / "restarted"),
                str(first),
                str(first + 15),
                str(tests),
                str(tests / "unit"),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=True,
        ).stdout
        restarted += json.loads(out.strip().splitlines()[-1])
    assert restarted == steady
