"""Sessions move both ways between mooring and the real strands-agents FileSessionManager."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from strands import Agent as StrandsAgent
from strands.session.file_session_manager import FileSessionManager as StrandsFileSessionManager

from mooring import Agent
from mooring.models import ScriptedModel
from mooring.session import FileSessionManager

from helpers.strands_model import EchoStrandsModel

pytestmark = pytest.mark.interop


def _strands_agent(storage: Path, session_id: str) -> StrandsAgent:
    return StrandsAgent(
        model=EchoStrandsModel(),
        agent_id="assistant",
        session_manager=StrandsFileSessionManager(session_id=session_id, storage_dir=str(storage)),
        callback_handler=None,
    )


def _plain(messages: list[dict]) -> list[dict]:
    # Strands adds metadata and a tracking id to messages; compare role and content only.
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def test_a_strands_session_restores_in_mooring(tmp_path: Path) -> None:
    theirs = _strands_agent(tmp_path, "from-strands")
    theirs("first question")
    theirs.state.set("plan", {"step": 2, "tags": ["a", "b"]})
    theirs("second question")
    expected = _plain(theirs.messages)

    model = ScriptedModel(["mooring reply"])
    ours = Agent(
        model=model,
        agent_id="assistant",
        session_manager=FileSessionManager(session_id="from-strands", storage_dir=tmp_path),
        callback_handler=None,
    )
    assert _plain(ours.messages) == expected
    assert ours.state.get("plan") == {"step": 2, "tags": ["a", "b"]}
    ours("third question")
    # The model saw the restored history, and the new turn continued the Strands ids.
    assert _plain(model.calls[0].messages[:-1]) == expected
    messages_dir = tmp_path / "session_from-strands" / "agents" / "agent_assistant" / "messages"
    assert sorted(p.name for p in messages_dir.iterdir() if not p.name.startswith(".")) == [
        f"message_{i}.json" for i in range(6)
    ]


def test_a_mooring_session_restores_in_strands(tmp_path: Path) -> None:
    ours = Agent(
        model=ScriptedModel(["Paris.", "You asked about France."]),
        agent_id="assistant",
        session_manager=FileSessionManager(session_id="from-mooring", storage_dir=tmp_path),
        callback_handler=None,
    )
    ours("What's the capital of France?")
    ours.state.set("counter", 7)
    ours("What did I ask?")
    expected = _plain(ours.messages)

    theirs = _strands_agent(tmp_path, "from-mooring")
    assert _plain(theirs.messages) == expected
    assert theirs.state.get("counter") == 7
    theirs("one more")
    assert _plain(theirs.messages)[:4] == expected
    # Strands appended at the next id without overwriting ours.
    record = json.loads(
        (tmp_path / "session_from-mooring" / "agents" / "agent_assistant" / "messages" / "message_4.json").read_text()
    )
    assert record["message"]["content"][0]["text"] == "one more"


def test_a_strands_agent_without_an_id_loads_as_agent_id_default(tmp_path: Path) -> None:
    theirs = StrandsAgent(
        model=EchoStrandsModel(),
        session_manager=StrandsFileSessionManager(session_id="no-id", storage_dir=str(tmp_path)),
        callback_handler=None,
    )
    theirs("hello")
    assert (tmp_path / "session_no-id" / "agents" / "agent_default").is_dir()

    ours = Agent(
        model=ScriptedModel(["hi again"]),
        agent_id="default",
        session_manager=FileSessionManager(session_id="no-id", storage_dir=tmp_path),
        callback_handler=None,
    )
    assert _plain(ours.messages) == _plain(theirs.messages)


def test_mooring_asks_for_the_agent_id_a_session_needs(tmp_path: Path) -> None:
    from mooring.errors import ConfigurationError, MissingAgentIdError

    with pytest.raises(MissingAgentIdError) as caught:
        Agent(session_manager=FileSessionManager(session_id="s", storage_dir=tmp_path), callback_handler=None)

    assert isinstance(caught.value, ConfigurationError) and isinstance(caught.value, ValueError)
    assert 'agent_id="assistant"' in str(caught.value) and 'agent_id="default"' in str(caught.value)
    assert not (tmp_path / "session_s").exists()  # refused before anything was stored
