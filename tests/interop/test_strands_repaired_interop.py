"""A session repaired by ``verify --repair`` (placeholders in place of lost messages) still
loads in the real strands-agents FileSessionManager, with every message at its index."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from strands import Agent as StrandsAgent
from strands.session.file_session_manager import FileSessionManager as StrandsFileSessionManager

from mooring import Agent, tool
from mooring.models import ScriptedModel, tool_call
from mooring.session import FileSessionManager, FileSessionRepository
from mooring.session.backends.file.repair import FileStoreInspector
from mooring.session.verify import verify_session

from helpers.strands_model import EchoStrandsModel

pytestmark = pytest.mark.interop


@tool
def lookup(word: str) -> str:
    """Look a word up.

    Args:
        word: the word
    """
    return word.upper()


def _message_file(store: Path, message_id: int) -> Path:
    return store / "session_s1" / "agents" / "agent_assistant" / "messages" / f"message_{message_id}.json"


def _repair(store: Path) -> None:
    repository = FileSessionRepository(store)
    report = asyncio.run(verify_session(repository, "s1", repair=True, inspector=FileStoreInspector(repository)))
    assert report.ok and report.remaining == [], report.to_dict()


def _strands_messages(store: Path) -> list[dict[str, Any]]:
    theirs = StrandsAgent(
        model=EchoStrandsModel(),
        agent_id="assistant",
        session_manager=StrandsFileSessionManager(session_id="s1", storage_dir=str(store)),
        callback_handler=None,
    )
    return [{"role": m["role"], "content": m["content"]} for m in theirs.messages]


def test_strands_loads_a_repaired_session_of_twenty_messages(tmp_path: Path) -> None:
    ours = Agent(
        model=ScriptedModel([f"a{i}" for i in range(10)]),
        agent_id="assistant",
        session_manager=FileSessionManager(session_id="s1", storage_dir=tmp_path),
        callback_handler=None,
    )
    for i in range(10):
        ours(f"q{i}")
    before = [{"role": m["role"], "content": m["content"]} for m in ours.messages]
    torn = _message_file(tmp_path, 5)
    torn.write_bytes(torn.read_bytes()[:40])

    _repair(tmp_path)

    messages = _strands_messages(tmp_path)
    assert len(messages) == 20
    assert [m for i, m in enumerate(messages) if i != 5] == [m for i, m in enumerate(before) if i != 5]
    assert messages[5] == {
        "role": "assistant",
        "content": [{"text": "[mooring: message 5 could not be read and was moved to quarantine]"}],
    }


@pytest.mark.parametrize("lost", [3, 4], ids=["the-tool-call", "the-tool-result"])
def test_strands_keeps_every_message_of_a_repaired_tool_pair(tmp_path: Path, lost: int) -> None:
    ours = Agent(
        model=ScriptedModel(
            ["hello", [{"text": "Looking."}, tool_call("lookup", {"word": "sea"}, tool_use_id="tu-1")], "It is SEA."]
        ),
        agent_id="assistant",
        tools=[lookup],
        session_manager=FileSessionManager(session_id="s1", storage_dir=tmp_path),
        callback_handler=None,
    )
    ours("hi")
    ours("look up sea")
    before = [{"role": m["role"], "content": m["content"]} for m in ours.messages]
    _message_file(tmp_path, lost).write_text("{")

    _repair(tmp_path)

    # Strands drops an orphaned toolResult and rebuilds a mismatched pair on load; the
    # placeholder leaves it nothing to drop, so all six messages arrive, in order.
    messages = _strands_messages(tmp_path)
    assert len(messages) == 6
    assert [m for i, m in enumerate(messages) if i != lost] == [m for i, m in enumerate(before) if i != lost]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user", "assistant"]
