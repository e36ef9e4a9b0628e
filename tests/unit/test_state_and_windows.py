"""agent.state, the sliding window and the hook order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mooring import Agent, AgentState, NullConversationManager, SlidingWindowConversationManager, ToolContext, tool
from mooring.agent.conversation import is_valid_start
from mooring.agent.hooks import (
    AfterInvocation,
    AfterModelCall,
    AfterToolCall,
    AgentInitialized,
    BeforeInvocation,
    BeforeModelCall,
    BeforeToolCall,
    HookEvent,
    HookRegistry,
    MessageAdded,
)
from mooring.errors import ModelError, MooringError, UnstorableContentError
from mooring.models import ScriptedModel, tool_call
from mooring.session import FileSessionManager


def test_state_refuses_what_json_cannot_hold_and_names_the_key() -> None:
    state = AgentState({"ok": 1})
    with pytest.raises(ValueError, match="'when'"):
        state.set("when", object())
    with pytest.raises(ValueError, match="'nan'"):
        state.set("nan", float("nan"))
    with pytest.raises(ValueError, match="non-blank"):
        state.set("  ", 1)
    assert state.get() == {"ok": 1}


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"down": value} if depth % 2 else [value]
    return value


UNSTORABLE_VALUES = {
    "deeper-than-100": _nested(101),
    "deep-enough-to-break-copying": _nested(900),
    "deeper-than-json-recurses": _nested(5000),
    "lone-surrogate": "half \ud800 a pair",
    "lone-surrogate-in-a-key": {"\udfff": 1},
    "bytes": b"raw",
}


@pytest.mark.parametrize("value", UNSTORABLE_VALUES.values(), ids=UNSTORABLE_VALUES.keys())
def test_state_refuses_what_no_backend_can_store_at_once(value: Any) -> None:
    state = AgentState({"ok": 1})
    with pytest.raises(UnstorableContentError, match="'bad'") as info:
        state.set("bad", value)
    assert isinstance(info.value, MooringError) and isinstance(info.value, ValueError)
    assert state.get() == {"ok": 1} and "bad" not in state.dirty_keys()
    with pytest.raises(UnstorableContentError, match="surrogate"):
        state.set("key \ud800", 1)


def test_a_state_value_at_the_depth_limit_is_stored_and_restored(tmp_path: Path) -> None:
    @tool
    def remember(depth: int, context: ToolContext) -> str:
        """Stores a deeply nested value."""
        for key, value in (("deepest", _nested(depth)), ("too deep", _nested(depth + 1))):
            try:
                context.agent.state.set(key, value)
            except UnstorableContentError as exc:
                return f"refused: {exc}"
        return "both stored"

    def agent(responses: list[Any]) -> Agent:
        manager = FileSessionManager(session_id="deep", storage_dir=tmp_path)
        return Agent(
            agent_id="default",
            model=ScriptedModel(responses),
            tools=[remember],
            session_manager=manager,
            callback_handler=None,
        )

    first = agent([[tool_call("remember", {"depth": 100})], "done"])
    first("remember")
    result = first.messages[2]["content"][0]["toolResult"]["content"][0]["text"]  # type: ignore[typeddict-item]
    assert "refused" in result and "'too deep'" in result and "100 levels" in result
    restored = agent([])
    assert restored.state.get("deepest") == _nested(100)
    assert "too deep" not in restored.state
    assert [m["role"] for m in restored.messages] == ["user", "assistant", "user", "assistant"]


def test_state_hands_out_copies() -> None:
    state = AgentState()
    value = {"items": [1, 2]}
    state.set("k", value)
    value["items"].append(3)
    got = state.get("k")
    got["items"].append(4)
    assert state.get("k") == {"items": [1, 2]}
    state.delete("k")
    assert state.get("k") is None and state.get("k", "fallback") == "fallback"


def test_state_constructor_validates() -> None:
    with pytest.raises(ValueError, match="'bad'"):
        Agent(model=ScriptedModel([]), state={"bad": {1, 2}}, callback_handler=None)


def _turn(i: int, with_tool: bool) -> list[Any]:
    if not with_tool:
        return [
            {"role": "user", "content": [{"text": f"q{i}"}]},
            {"role": "assistant", "content": [{"text": f"a{i}"}]},
        ]
    return [
        {"role": "user", "content": [{"text": f"q{i}"}]},
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": f"t{i}", "name": "x", "input": {}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": f"t{i}", "status": "success", "content": []}}]},
        {"role": "assistant", "content": [{"text": f"a{i}"}]},
    ]


@given(st.lists(st.booleans(), min_size=1, max_size=30), st.integers(min_value=0, max_value=20))
def test_sliding_window_never_splits_a_tool_pair(tools: list[bool], window: int) -> None:
    history = [m for i, t in enumerate(tools) for m in _turn(i, t)]
    agent = Agent(model=ScriptedModel([]), messages=history, callback_handler=None)
    manager = SlidingWindowConversationManager(window)
    manager.apply_management(agent)
    assert len(agent.messages) <= max(window, 0) or not agent.messages
    assert manager.removed_message_count + len(agent.messages) == len(history)
    assert agent.messages == history[manager.removed_message_count :]
    assert is_valid_start(agent.messages, 0)
    assert manager.get_state() == {
        "__name__": "SlidingWindowConversationManager",
        "removed_message_count": manager.removed_message_count,
    }


def test_null_manager_keeps_everything() -> None:
    history = [m for i in range(30) for m in _turn(i, False)]
    agent = Agent(
        model=ScriptedModel([]), messages=history, conversation_manager=NullConversationManager(), callback_handler=None
    )
    agent.conversation_manager.apply_management(agent)
    assert len(agent.messages) == 60


class Recorder:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def register_hooks(self, registry: HookRegistry) -> None:
        for event in (
            AgentInitialized,
            BeforeInvocation,
            AfterInvocation,
            MessageAdded,
            BeforeModelCall,
            AfterModelCall,
            BeforeToolCall,
            AfterToolCall,
        ):
            registry.add_callback(event, self.record)

    async def record(self, event: HookEvent) -> None:  # async callbacks are awaited
        name = type(event).__name__
        if isinstance(event, AfterInvocation):
            name += "(error)" if event.error else "(ok)"
        self.seen.append(name)


@tool
def noop() -> str:
    """Do nothing."""
    return "nothing"


def test_hook_order_for_a_tool_turn() -> None:
    recorder = Recorder()
    agent = Agent(
        model=ScriptedModel([[tool_call("noop")], "done"]), tools=[noop], hooks=[recorder], callback_handler=None
    )
    agent("go")
    assert recorder.seen == [
        "AgentInitialized",
        "BeforeInvocation",
        "MessageAdded",
        "BeforeModelCall",
        "AfterModelCall",
        "MessageAdded",
        "BeforeToolCall",
        "AfterToolCall",
        "MessageAdded",
        "BeforeModelCall",
        "AfterModelCall",
        "MessageAdded",
        "AfterInvocation(ok)",
    ]


def test_after_events_fire_on_error_too() -> None:
    recorder = Recorder()
    agent = Agent(model=ScriptedModel([ModelError("boom")]), hooks=[recorder], callback_handler=None)
    with pytest.raises(ModelError):
        agent("go")
    assert recorder.seen[-3:] == ["BeforeModelCall", "AfterModelCall", "AfterInvocation(error)"]


def test_after_callbacks_run_in_reverse_order() -> None:
    order: list[str] = []
    registry = HookRegistry()
    registry.add_callback(BeforeInvocation, lambda e: order.append("before-1"))
    registry.add_callback(BeforeInvocation, lambda e: order.append("before-2"))
    registry.add_callback(AfterInvocation, lambda e: order.append("after-1"))
    registry.add_callback(AfterInvocation, lambda e: order.append("after-2"))
    agent = Agent(model=ScriptedModel(["x"]), callback_handler=None)
    agent.hooks = registry
    agent("go")
    assert order == ["before-1", "before-2", "after-2", "after-1"]
