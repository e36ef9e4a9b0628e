"""A summarized session moves both ways between mooring and Strands' SummarizingConversationManager."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from strands import Agent as StrandsAgent
from strands.agent.conversation_manager import SummarizingConversationManager as StrandsSummarizing
from strands.session.file_session_manager import FileSessionManager as StrandsFileSessionManager

from mooring import Agent, SummarizingConversationManager
from mooring.session import FileSessionManager

from helpers.conversation_models import SUMMARY_PREFIX, lookup, tool_model
from helpers.strands_model import SummarizingStrandsModel

pytestmark = pytest.mark.interop


def _plain(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Strands adds metadata and a tracking id to messages; compare role and content only.
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _strands_agent(storage: Path, model: SummarizingStrandsModel) -> StrandsAgent:
    return StrandsAgent(
        model=model,
        agent_id="assistant",
        conversation_manager=StrandsSummarizing(summary_ratio=0.5, preserve_recent_messages=4),
        session_manager=StrandsFileSessionManager(session_id="shared", storage_dir=str(storage)),
        callback_handler=None,
    )


def _mooring_agent(storage: Path, **options: Any) -> tuple[Agent, Any]:
    model = tool_model()
    manager = SummarizingConversationManager(preserve_recent_messages=6, **options)
    agent = Agent(
        model=model,
        agent_id="assistant",
        tools=[lookup],
        conversation_manager=manager,
        session_manager=FileSessionManager(session_id="shared", storage_dir=storage),
        callback_handler=None,
    )
    return agent, model


def _state(storage: Path) -> dict[str, Any]:
    path = storage / "session_shared" / "agents" / "agent_assistant" / "agent.json"
    state: dict[str, Any] = json.loads(path.read_text())["conversation_manager_state"]
    return state


def test_a_session_summarized_by_strands_resumes_in_mooring_with_its_summary(tmp_path: Path) -> None:
    theirs = _strands_agent(tmp_path, SummarizingStrandsModel(limit=12))
    for turn in range(12):
        theirs(f"question {turn}")
    state = _state(tmp_path)
    assert state["summary_message"] is not None and state["removed_message_count"] > 0
    summary = _plain([state["summary_message"]])[0]
    assert summary["content"][0]["text"].startswith("Strands summary")
    expected = _plain(theirs.messages)

    ours, model = _mooring_agent(tmp_path)
    assert _plain(ours.messages) == expected
    assert _plain(ours.messages)[0] == summary
    ours("turn 100")
    assert _plain(model.calls[0].messages)[0] == summary  # the model was sent Strands' summary


def test_a_session_summarized_by_mooring_resumes_in_strands_with_its_summary(tmp_path: Path) -> None:
    ours, _ = _mooring_agent(tmp_path, max_context_tokens=3000)
    for turn in range(30):
        ours(f"turn {turn}")
    state = _state(tmp_path)
    assert state["summary_message"]["content"][0]["text"].startswith(SUMMARY_PREFIX)
    expected = _plain(ours.messages)

    model = SummarizingStrandsModel(limit=1000)
    theirs = _strands_agent(tmp_path, model)
    assert _plain(theirs.messages) == expected
    theirs("one more question")
    assert _plain(model.calls[0]["messages"])[0] == _plain([state["summary_message"]])[0]
    # And back: mooring resumes after Strands' turn, the same summary still first.
    again, _ = _mooring_agent(tmp_path, max_context_tokens=3000)
    assert _plain(again.messages)[0] == _plain([state["summary_message"]])[0]
    assert _plain(again.messages)[-2:] == _plain(theirs.messages)[-2:]
