"""SummarizingConversationManager, token budgets, truncated results and pins, on a real store."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from mooring import Agent, SlidingWindowConversationManager, SummarizingConversationManager
from mooring._sync import run_sync
from mooring.agent.budget import TRUNCATION_MARKER, chars_per_token
from mooring.cli import main
from mooring.errors import ConfigurationError, ContextWindowOverflowError, ModelError
from mooring.models import ScriptedModel
from mooring.session import FileSessionManager
from mooring.types import tool_result_ids, tool_uses

from helpers.conversation_models import SUMMARY_PREFIX, lookup, respond, tool_model

MARKER_START = TRUNCATION_MARKER.split("{")[0]


def _agent(storage: Path, model: ScriptedModel, manager: Any, **options: Any) -> Agent:
    return Agent(
        model=model,
        agent_id="assistant",
        tools=[lookup],
        conversation_manager=manager,
        session_manager=FileSessionManager(session_id="s", storage_dir=storage, durability="none"),
        callback_handler=None,
        **options,
    )


def _stored(storage: Path) -> list[dict[str, Any]]:
    directory = storage / "session_s" / "agents" / "agent_assistant" / "messages"
    count = len([p for p in directory.iterdir() if p.name.startswith("message_")])
    return [json.loads((directory / f"message_{i}.json").read_text())["message"] for i in range(count)]


def _agent_record(storage: Path) -> dict[str, Any]:
    path = storage / "session_s" / "agents" / "agent_assistant" / "agent.json"
    record: dict[str, Any] = json.loads(path.read_text())
    return record


def _summarizing(**options: Any) -> SummarizingConversationManager:
    options.setdefault("max_context_tokens", 3000)
    options.setdefault("preserve_recent_messages", 6)
    return SummarizingConversationManager(**options)


def test_summaries_are_kept_in_the_manager_state_and_every_original_stays_stored(tmp_path: Path) -> None:
    manager = _summarizing(pin_first_messages=2)
    agent = _agent(tmp_path, tool_model(), manager)
    for turn in range(40):
        agent(f"turn {turn}")
    stored = _stored(tmp_path)
    assert len(stored) == 160  # four messages a turn, none deleted
    state = _agent_record(tmp_path)["conversation_manager_state"]
    assert state["__name__"] == "SummarizingConversationManager"
    assert state["summary_message"]["role"] == "user"
    assert state["summary_message"]["content"][0]["text"].startswith(SUMMARY_PREFIX)
    removed = state["removed_message_count"]
    assert 0 < removed < 160
    # In memory: the pinned opening, the summary, then exactly the stored messages after the offset.
    assert agent.messages == [*stored[:4], state["summary_message"], *stored[removed:]]
    assert state["pinned_messages"] == stored[:4]  # the first turn, kept whole with its tool exchange

    restored = _agent(tmp_path, tool_model(), _summarizing(pin_first_messages=2))
    assert restored.messages == agent.messages


def test_a_restore_reads_only_the_messages_after_the_summary(tmp_path: Path) -> None:
    agent = _agent(tmp_path, tool_model(), _summarizing())
    for turn in range(40):
        agent(f"turn {turn}")
    removed = _agent_record(tmp_path)["conversation_manager_state"]["removed_message_count"]
    directory = tmp_path / "session_s" / "agents" / "agent_assistant" / "messages"
    for i in range(removed):  # a restore that read the summarized messages would fail now
        (directory / f"message_{i}.json").unlink()
    restored = _agent(tmp_path, tool_model(), _summarizing())
    assert restored.messages == agent.messages
    restored("turn 40")


def test_no_model_input_separates_a_tool_use_from_its_result(tmp_path: Path) -> None:
    model = tool_model()
    agent = _agent(tmp_path, model, _summarizing(pin_first_messages=1, summary_ratio=0.5))
    for turn in range(80):
        agent(f"turn {turn}")
    for call in model.calls:
        for index, message in enumerate(call.messages):
            if tool_result_ids(message):
                before = call.messages[index - 1]
                assert sorted(tool_result_ids(message)) == sorted(u["toolUseId"] for u in tool_uses(before))


def test_oversized_tool_results_are_truncated_for_the_model_only(tmp_path: Path) -> None:
    model = tool_model()
    agent = _agent(tmp_path, model, SlidingWindowConversationManager(max_context_tokens=8000))
    agent("turn 3")  # lookup(3) returns 20,000 characters
    sent = model.calls[1].messages[-1]["content"][0]["toolResult"]["content"][0]["text"]
    assert MARKER_START in sent
    assert len(sent) <= 8000 // 4 * chars_per_token(model)
    stored = _stored(tmp_path)[2]["content"][0]["toolResult"]["content"][0]["text"]
    assert len(stored) == 20_000 and MARKER_START not in stored
    assert agent.messages[2]["content"][0]["toolResult"]["content"][0]["text"] == stored


def test_results_are_truncated_before_anything_is_summarized(tmp_path: Path) -> None:
    model = tool_model()
    manager = _summarizing(max_context_tokens=9000)
    agent = _agent(tmp_path, model, manager)
    agent("turn 3")  # 20,000 characters would be over budget; truncated they fit
    assert manager.summary_message is None and manager.removed_message_count == 0
    assert all(call.system_prompt is None for call in model.calls)


def test_a_failed_summarization_changes_nothing_and_the_sliding_fallback_keeps_the_budget(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    failing = {"on": False}

    def answer(messages: list[Any], specs: list[Any], system: str | None) -> Any:
        if system is not None and failing["on"]:
            raise ModelError("the summarization model is down")
        return respond(messages, specs, system)

    model = ScriptedModel([answer], repeat_last=True)
    manager = _summarizing()
    agent = _agent(tmp_path, model, manager)
    for turn in range(30):
        agent(f"turn {turn}")
    summary_before = manager.summary_message
    assert summary_before is not None
    failing["on"] = True
    removed_before = manager.removed_message_count
    with caplog.at_level(logging.WARNING, logger="mooring.agent.summarizing"):
        for turn in range(30, 40):
            agent(f"turn {turn}")
    assert "summarization failed" in caplog.text
    assert manager.summary_message == summary_before  # the summary was not touched
    assert manager.removed_message_count > removed_before  # the window was trimmed instead
    state = _agent_record(tmp_path)["conversation_manager_state"]
    assert state["summary_message"] == summary_before
    assert len(_stored(tmp_path)) == 160


def test_a_separate_summarization_agent_writes_the_summary(tmp_path: Path) -> None:
    helper_model = ScriptedModel(["Summary of prompts: cheap"], repeat_last=True)
    helper = Agent(model=helper_model, callback_handler=None)
    main_model = tool_model()
    manager = _summarizing(summarization_agent=helper)
    agent = _agent(tmp_path, main_model, manager)
    for turn in range(30):
        agent(f"turn {turn}")
    assert manager.summary_message == {"role": "user", "content": [{"text": "Summary of prompts: cheap"}]}
    assert helper_model.calls and all(call.system_prompt is None for call in main_model.calls)
    assert helper.messages == []  # its throwaway conversation is put back


def test_a_context_overflow_is_summarized_without_a_budget(tmp_path: Path) -> None:
    calls = {"n": 0}

    def answer(messages: list[Any], specs: list[Any], system: str | None) -> Any:
        calls["n"] += 1
        if system is None and len(messages) > 30:
            raise ContextWindowOverflowError("too long")
        return respond(messages, specs, system)

    manager = SummarizingConversationManager(preserve_recent_messages=4)
    agent = _agent(tmp_path, ScriptedModel([answer], repeat_last=True), manager)
    for turn in range(20):
        agent(f"turn {turn}")
    assert manager.summary_message is not None
    assert len(agent.messages) <= 31


def test_pins_survive_restores_on_the_sliding_window(tmp_path: Path) -> None:
    def manager() -> SlidingWindowConversationManager:
        return SlidingWindowConversationManager(10, pin_first_messages=1)

    agent = _agent(tmp_path, tool_model(), manager())
    agent("turn 0")
    for turn in range(1, 20):
        assert isinstance(agent.session_manager, FileSessionManager)
        run_sync(agent.session_manager.repository.close())  # a restart: the old handles go
        agent = _agent(tmp_path, tool_model(), manager())
        agent(f"turn {turn}")
        assert agent.messages[0]["content"][0]["text"] == "turn 0"
        assert len(agent.messages) <= 10


def test_the_options_are_checked() -> None:
    with pytest.raises(ValueError, match="summary_ratio"):
        SummarizingConversationManager(summary_ratio=0.95)
    with pytest.raises(ValueError, match="max_context_tokens"):
        SlidingWindowConversationManager(max_context_tokens=0)
    with pytest.raises(ConfigurationError):
        SummarizingConversationManager(
            summarization_agent=Agent(model=ScriptedModel([]), callback_handler=None),
            summarization_system_prompt="x",
        )


def test_sessions_show_all_lists_every_original_and_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    agent = _agent(tmp_path, tool_model(), _summarizing())
    for turn in range(30):
        agent(f"turn {turn}")
    capsys.readouterr()
    assert main(["sessions", "show", "s", "--all", "--store", str(tmp_path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["agents"][0]
    assert len(shown["messages"]) == 120
    assert [m["message_id"] for m in shown["messages"]] == list(range(120))
    assert shown["conversation_manager_state"]["summary_message"]["content"][0]["text"].startswith(SUMMARY_PREFIX)
    assert main(["sessions", "show", "s", "--all", "--store", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "turn 0" in text and "turn 29" in text and "summary: Summary of prompts" in text
