"""Processes doing direct tool calls and structured-output turns on one file session at once:
every turn is stored exactly once, whole and in order, and the history stays an alternation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 3
ROUNDS = 4

WORKER = textwrap.dedent(
    """
    import sys
    from pydantic import BaseModel
    from mooring import Agent, tool
    from mooring.models import ScriptedModel, tool_call
    from mooring.session import FileSessionManager

    class Tag(BaseModel):
        label: str

    @tool
    def word_count(text: str) -> int:
        '''Count words.'''
        return len(text.split())

    def answer(messages, specs, system_prompt):
        prompt = next(m for m in reversed(messages) if m["role"] == "user" and "text" in m["content"][0])
        return [tool_call("Tag", {"label": prompt["content"][0]["text"]})]

    store, worker, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    agent = Agent(
        model=ScriptedModel([answer], repeat_last=True),
        agent_id="assistant",
        tools=[word_count],
        session_manager=FileSessionManager("shared", storage_dir=store, lease_wait=120),
        callback_handler=None,
    )
    for i in range(rounds):
        agent.tool.word_count(text=f"{worker} round {i}")
        tag = agent.structured_output(Tag, f"{worker}-{i}")
        assert tag.label == f"{worker}-{i}", tag
    """
)


def test_direct_calls_and_structured_turns_from_several_processes(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path), f"w{n}", str(ROUNDS)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(PROCESSES)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err

    folder = tmp_path / "session_shared/agents/agent_assistant/messages"
    files = sorted(folder.iterdir(), key=lambda p: int(p.stem.split("_")[1]))
    assert [int(p.stem.split("_")[1]) for p in files] == list(range(len(files)))  # dense ids
    messages = [json.loads(p.read_text())["message"] for p in files]
    # A direct call is 4 messages and a structured turn (tool forced, no other tool) 4 more.
    assert len(messages) == PROCESSES * ROUNDS * 8
    assert [m["role"] for m in messages] == ["user", "assistant"] * (len(messages) // 2)

    seen: list[str] = []
    for start in range(0, len(messages), 4):
        note, use, result, closing = messages[start : start + 4]
        use_block = use["content"][0]["toolUse"]
        assert result["content"][0]["toolResult"]["toolUseId"] == use_block["toolUseId"]
        if use_block["name"] == "word_count":
            text = use_block["input"]["text"]
            assert note["content"][0]["text"].startswith("agent.tool.word_count direct tool call.")
            assert closing["content"][0]["text"] == "agent.tool.word_count was called."
            seen.append(f"call {text}")
        else:
            label = note["content"][0]["text"]
            assert use_block == {**use_block, "name": "Tag", "input": {"label": label}}
            assert json.loads(closing["content"][0]["text"]) == {"label": label}
            seen.append(f"tag {label}")
    expected = [f"call w{n} round {i}" for n in range(PROCESSES) for i in range(ROUNDS)]
    expected += [f"tag w{n}-{i}" for n in range(PROCESSES) for i in range(ROUNDS)]
    assert sorted(seen) == sorted(expected)  # every turn exactly once
    # Each process's own turns are stored in the order it made them.
    for n in range(PROCESSES):
        mine = [s for s in seen if f"w{n}" in s]
        assert mine == [x for i in range(ROUNDS) for x in (f"call w{n} round {i}", f"tag w{n}-{i}")]
