"""Helpers shared by the CLI tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from mooring import Agent, tool
from mooring.cli import main
from mooring.models import ScriptedModel, tool_call
from mooring.session import FileSessionManager


@tool
def word_count(text: str) -> int:
    """Count the words in a text.

    Args:
        text: the text whose words are counted
    """
    return len(text.split())


def write_session(
    store: Path,
    session_id: str,
    turns: Sequence[tuple[str, Sequence[Any]]],
    *,
    agent_id: str = "default",
    state: dict[str, Any] | None = None,
) -> Agent:
    """Run ``turns`` (prompt, scripted model responses) through a real Agent on the file store."""
    responses = [r for _, rs in turns for r in rs]
    agent = Agent(
        model=ScriptedModel(responses),
        agent_id=agent_id,
        tools=[word_count],
        session_manager=FileSessionManager(session_id=session_id, storage_dir=store),
        callback_handler=None,
    )
    for key, value in (state or {}).items():
        agent.state.set(key, value)
    for prompt, _ in turns:
        agent(prompt)
    return agent


def tool_turn(text: str = "the quick brown fox") -> tuple[str, list[Any]]:
    """A turn in which the model calls word_count, then answers."""
    return (
        f'Use word_count on "{text}"',
        [[{"text": "Counting."}, tool_call("word_count", {"text": text}, tool_use_id="tu-1")], "It has 4 words."],
    )


class Cli:
    """Runs ``main(argv)`` in-process and returns (exit code, stdout, stderr)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(list(argv))
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    def json(self, *argv: str) -> Any:
        code, out, err = self(*argv, "--json")
        assert code == 0, err
        return json.loads(out)


def message_files(store: Path, session_id: str, agent_id: str = "default") -> list[str]:
    directory = store / f"session_{session_id}" / "agents" / f"agent_{agent_id}" / "messages"
    names = [p.name for p in directory.iterdir() if not p.name.startswith(".")]
    return sorted(names, key=lambda n: int(n.split("_")[1].split(".")[0]))


def stored_messages(store: Path, session_id: str, agent_id: str = "default") -> list[dict[str, Any]]:
    directory = store / f"session_{session_id}" / "agents" / f"agent_{agent_id}" / "messages"
    return [
        json.loads((directory / name).read_text())["message"] for name in message_files(store, session_id, agent_id)
    ]
