"""The agent loop: tools, streaming, cycles, errors, overlapping invocations."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from mooring import Agent, ToolContext, tool
from mooring.agent.agent import INTERRUPTED_TEXT
from mooring.errors import (
    ConcurrentInvocationError,
    ContextWindowOverflowError,
    MaxCyclesExceededError,
    ModelError,
    ModelNotAvailableError,
)
from mooring.models import ScriptedModel, resolve_model, tool_call


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: the first addend
        b: the second addend
    """
    return a + b


@tool
async def shout(text: str) -> str:
    """Upper-case a text."""
    await asyncio.sleep(0)
    return text.upper()


@tool
def broken(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(reason)


def results_of(agent: Agent, index: int = -2) -> list[dict[str, Any]]:
    return [b["toolResult"] for b in agent.messages[index]["content"]]


def test_sync_tool_round_trip() -> None:
    model = ScriptedModel([[tool_call("add", {"a": 2, "b": 3}, "t1")], "It is 5."])
    agent = Agent(model=model, tools=[add], callback_handler=None)
    result = agent("add 2 and 3")
    assert str(result) == "It is 5." and result.stop_reason == "end_turn" and result.cycles == 2
    assert results_of(agent) == [{"toolUseId": "t1", "status": "success", "content": [{"json": 5}]}]
    assert [m["role"] for m in agent.messages] == ["user", "assistant", "user", "assistant"]
    # The model saw the tool result on its second call.
    assert model.calls[1].messages[-1]["content"][0]["toolResult"]["toolUseId"] == "t1"


def test_async_tool_and_parallel_calls_keep_their_order() -> None:
    model = ScriptedModel([[tool_call("shout", {"text": "hi"}, "a"), tool_call("add", {"a": 1, "b": 1}, "b")], "done"])
    agent = Agent(model=model, tools=[add, shout], callback_handler=None)
    agent("go")
    results = results_of(agent)
    assert [r["toolUseId"] for r in results] == ["a", "b"]
    assert results[0]["content"] == [{"text": "HI"}] and results[1]["content"] == [{"json": 2}]


def test_failing_unknown_and_invalid_tools_become_error_results() -> None:
    model = ScriptedModel(
        [
            [
                tool_call("broken", {"reason": "disk on fire"}, "x"),
                tool_call("nope", {}, "y"),
                tool_call("add", {"a": "not a number", "b": 1}, "z"),
            ],
            "recovered",
        ]
    )
    agent = Agent(model=model, tools=[add, broken], callback_handler=None)
    assert str(agent("try")) == "recovered"
    x, y, z = results_of(agent)
    assert x["status"] == "error" and "disk on fire" in x["content"][0]["text"]
    assert y["status"] == "error" and "unknown tool 'nope'" in y["content"][0]["text"]
    assert "add, broken" in y["content"][0]["text"]
    assert z["status"] == "error" and "invalid input" in z["content"][0]["text"]


def test_tool_schema_comes_from_hints_and_docstring() -> None:
    assert add.spec == {
        "name": "add",
        "description": "Add two integers.",
        "inputSchema": {
            "json": {
                "type": "object",
                "properties": {
                    "a": {"type": "integer", "description": "the first addend"},
                    "b": {"type": "integer", "description": "the second addend"},
                },
                "required": ["a", "b"],
            }
        },
    }
    assert add(2, 2) == 4  # still a plain function


def test_tool_context_is_injected_and_left_out_of_the_schema() -> None:
    seen: dict[str, Any] = {}

    @tool
    def remember(note: str, ctx: ToolContext) -> str:
        """Store a note in the agent state."""
        ctx.agent.state.set("note", note)
        seen["id"] = ctx.tool_use_id
        return "ok"

    assert list(remember.input_schema["properties"]) == ["note"]
    agent = Agent(
        model=ScriptedModel([[tool_call("remember", {"note": "n1"}, "u9")], "saved"]),
        tools=[remember],
        callback_handler=None,
    )
    agent("remember n1")
    assert agent.state.get("note") == "n1" and seen["id"] == "u9"


def test_stream_events_arrive_in_order() -> None:
    agent = Agent(model=ScriptedModel(["Hello there, friend."], chunk_size=5), callback_handler=None)

    async def collect() -> list[dict[str, Any]]:
        return [event async for event in agent.stream_async("hi")]

    events = asyncio.run(collect())
    text = "".join(e["data"] for e in events if "data" in e)
    assert text == "Hello there, friend."
    assert [e["data"] for e in events if "data" in e] == ["Hello", " ther", "e, fr", "iend."]
    kinds = [next(iter(e)) for e in events]
    assert kinds[-1] == "result" and kinds.index("message") < kinds.index("result")
    assert kinds.index("data") < kinds.index("message")


def test_default_handler_prints_and_none_is_silent(capsys: pytest.CaptureFixture[str]) -> None:
    Agent(model=ScriptedModel(["printed answer"]))("q")
    assert "printed answer" in capsys.readouterr().out
    Agent(model=ScriptedModel(["quiet answer"]), callback_handler=None)("q")
    assert capsys.readouterr().out == ""


def test_prompt_as_content_blocks() -> None:
    model = ScriptedModel(["seen"])
    agent = Agent(model=model, callback_handler=None)
    blocks: Any = [{"text": "describe"}, {"image": {"format": "png", "source": {"bytes": b"\x89PNG"}}}]
    agent(blocks)
    assert model.calls[0].messages[0] == {"role": "user", "content": blocks}


def test_cycles_are_bounded() -> None:
    model = ScriptedModel([[tool_call("add", {"a": 1, "b": 1})]], repeat_last=True)
    agent = Agent(model=model, tools=[add], callback_handler=None, max_cycles=3)
    with pytest.raises(MaxCyclesExceededError, match="3 model/tool cycles"):
        agent("loop forever")
    assert len(model.calls) == 3


def test_overlapping_invocations_are_refused() -> None:
    agent = Agent(model=ScriptedModel(["slow answer"], delay=0.01), callback_handler=None)

    async def overlap() -> None:
        first = agent.stream_async("one")
        await first.__anext__()  # the first invocation is now running
        with pytest.raises(ConcurrentInvocationError, match="already running"):
            async for _ in agent.stream_async("two"):
                pass
        async for _ in first:
            pass

    asyncio.run(overlap())
    assert [m["content"][0]["text"] for m in agent.messages] == ["one", "slow answer"]


def test_sync_call_works_inside_a_running_loop() -> None:
    agent = Agent(model=ScriptedModel(["from inside"]), callback_handler=None)

    async def notebook_cell() -> str:
        return str(agent("hi"))  # what a Jupyter user does

    assert asyncio.run(notebook_cell()) == "from inside"


def test_context_overflow_trims_and_retries_while_the_context_can_shrink() -> None:
    from mooring import SlidingWindowConversationManager

    history: Any = []
    for i in range(6):
        history += [
            {"role": "user", "content": [{"text": f"q{i}"}]},
            {"role": "assistant", "content": [{"text": f"a{i}"}]},
        ]
    model = ScriptedModel([ContextWindowOverflowError("too long"), "fits now"])
    agent = Agent(
        model=model, messages=history, callback_handler=None, conversation_manager=SlidingWindowConversationManager(40)
    )
    assert str(agent("q6")) == "fits now"
    assert len(model.calls[1].messages) < len(model.calls[0].messages)
    assert model.calls[1].messages[0]["role"] == "user"

    always = ScriptedModel([ContextWindowOverflowError("a")], repeat_last=True)
    never_fits = Agent(model=always, messages=history, callback_handler=None)
    with pytest.raises(ContextWindowOverflowError):
        never_fits("again")
    # Each retry was sent less, and the retries are bounded.
    sizes = [len(call.messages) for call in always.calls]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)
    assert 2 <= len(always.calls) <= 5


def test_a_failed_model_call_takes_the_prompt_back() -> None:
    agent = Agent(model=ScriptedModel(["ok", ModelError("provider down"), "fine again"]), callback_handler=None)
    agent("first")
    with pytest.raises(ModelError):
        agent("second")
    assert [m["content"][0]["text"] for m in agent.messages] == ["first", "ok"]
    agent("third")
    assert [m["role"] for m in agent.messages] == ["user", "assistant", "user", "assistant"]


def test_an_open_turn_is_closed_before_the_next_prompt() -> None:
    dangling: Any = [
        {"role": "user", "content": [{"text": "add"}]},
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t", "name": "add", "input": {}}}]},
    ]
    model = ScriptedModel(["next answer"])
    agent = Agent(model=model, messages=dangling, callback_handler=None)
    agent("next")
    sent = model.calls[0].messages
    assert sent[2]["content"][0]["toolResult"]["status"] == "error"
    assert sent[3] == {"role": "assistant", "content": [{"text": INTERRUPTED_TEXT}]}
    assert sent[4]["content"][0]["text"] == "next"


def test_model_strings() -> None:
    assert type(resolve_model(None)).__name__ == "OfflineModel"
    assert type(resolve_model("offline")).__name__ == "OfflineModel"
    with pytest.raises(ModelNotAvailableError, match=r"available providers: .*offline"):
        resolve_model("nosuch:thing")


def test_mooring_model_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOORING_MODEL", "nosuch:model")
    with pytest.raises(ModelNotAvailableError, match="nosuch"):
        Agent()


def test_the_offline_model_remembers_and_says_what_it_is() -> None:
    agent = Agent(tools=[add], callback_handler=None)
    first = str(agent("What's the capital of France?"))
    assert "Paris" in first and first.startswith("[offline model]")
    assert 'You asked: "What\'s the capital of France?"' in str(agent("What did I just ask you?"))
    assert "5" in str(agent("please use add on 2 and 3"))


def test_no_test_can_reach_the_network() -> None:
    with pytest.raises(RuntimeError, match="network"):
        socket.create_connection(("192.0.2.1", 80), timeout=0.1)
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(RuntimeError, match="reach the network"):
            raw.connect(("192.0.2.1", 80))
    finally:
        raw.close()
