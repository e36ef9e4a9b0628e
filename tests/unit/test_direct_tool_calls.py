"""Direct tool calls (``agent.tool.NAME(...)``): the recorded shape, the refusal while an
invocation runs, and persistence through the session manager and its lease."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from mooring import Agent, tool
from mooring.errors import ConcurrentInvocationError, LeaseTimeoutError
from mooring.models import ScriptedModel, tool_call
from mooring.session import FileSessionManager


@tool
def word_count(text: str) -> int:
    """Count the words in a text."""
    return len(text.split())


@tool(name="get-time")
def get_time() -> str:
    """The time."""
    return "12:00"


@tool
def explode() -> str:
    """Always fails."""
    raise RuntimeError("boom")


def file_agent(tmp_path: Path, model: Any = None, **options: Any) -> Agent:
    return Agent(
        model=model or ScriptedModel([]),
        agent_id="assistant",
        tools=[word_count, get_time, explode],
        session_manager=FileSessionManager("direct", storage_dir=tmp_path, **options),
        callback_handler=None,
    )


def stored_messages(tmp_path: Path) -> list[dict[str, Any]]:
    folder = tmp_path / "session_direct/agents/agent_assistant/messages"
    files = sorted(folder.iterdir(), key=lambda p: int(p.stem.split("_")[1]))
    return [json.loads(p.read_text())["message"] for p in files]


def test_a_direct_call_returns_the_result_and_records_four_messages() -> None:
    agent = Agent(model=ScriptedModel([]), tools=[word_count], callback_handler=None)

    result = agent.tool.word_count(text="one two three")

    assert result["status"] == "success" and result["content"] == [{"json": 3}]
    use_id = result["toolUseId"]
    assert use_id.startswith("tooluse_word_count_")
    assert agent.messages == [
        {
            "role": "user",
            "content": [
                {"text": 'agent.tool.word_count direct tool call.\nInput parameters: {"text": "one two three"}\n'}
            ],
        },
        {
            "role": "assistant",
            "content": [{"toolUse": {"toolUseId": use_id, "name": "word_count", "input": {"text": "one two three"}}}],
        },
        {"role": "user", "content": [{"toolResult": result}]},
        {"role": "assistant", "content": [{"text": "agent.tool.word_count was called."}]},
    ]


def test_options_of_the_call() -> None:
    agent = Agent(model=ScriptedModel([]), tools=[word_count, get_time, explode], callback_handler=None)

    assert agent.tool.word_count(text="a b", record_direct_tool_call=False)["content"] == [{"json": 2}]
    assert agent.messages == []
    assert agent.tool.get_time()["content"] == [{"text": "12:00"}]  # underscores find dashed names
    assert agent.messages[1]["content"][0]["toolUse"]["name"] == "get-time"
    failed = agent.tool.explode(user_message_override="Please blow up")
    assert failed["status"] == "error" and "boom" in failed["content"][0]["text"]
    assert agent.messages[-4]["content"][0] == {"text": "Please blow up\n"}
    assert agent.messages[-2]["content"][0]["toolResult"] == failed

    quiet = Agent(model=ScriptedModel([]), tools=[word_count], record_direct_tool_call=False, callback_handler=None)
    quiet.tool.word_count(text="x")
    assert quiet.messages == []
    quiet.tool.word_count(text="x", record_direct_tool_call=True)
    assert len(quiet.messages) == 4


def test_an_unknown_tool_names_the_available_ones() -> None:
    agent = Agent(model=ScriptedModel([]), tools=[word_count, get_time], callback_handler=None)

    with pytest.raises(AttributeError, match=r"no tool named 'wordcount'; available tools: word_count, get-time"):
        agent.tool.wordcount(text="x")
    assert sorted(dir(agent.tool)) == ["get-time", "word_count"]


def test_a_recorded_call_is_refused_while_an_invocation_runs() -> None:
    seen: dict[str, Any] = {}

    @tool
    def inner(ctx_note: str) -> str:
        """Calls another tool of the same agent directly."""
        try:
            agent.tool.word_count(text="a b c")
        except ConcurrentInvocationError as exc:
            seen["refused"] = str(exc)
        seen["unrecorded"] = agent.tool.word_count(text="a b c", record_direct_tool_call=False)
        return "done"

    model = ScriptedModel([[tool_call("inner", {"ctx_note": "x"})], "finished"])
    agent = Agent(model=model, tools=[inner, word_count], callback_handler=None)
    agent("go")

    assert "running an invocation" in seen["refused"] and "record_direct_tool_call=False" in seen["refused"]
    assert seen["unrecorded"]["content"] == [{"json": 3}]
    assert [m["role"] for m in agent.messages] == ["user", "assistant", "user", "assistant"]
    assert "direct tool call" not in json.dumps(agent.messages)


def test_a_direct_call_works_inside_a_running_event_loop() -> None:
    agent = Agent(model=ScriptedModel([]), tools=[word_count], callback_handler=None)

    async def go() -> Any:
        return agent.tool.word_count(text="x y")

    assert asyncio.run(go())["content"] == [{"json": 2}]
    assert len(agent.messages) == 4


def test_a_recorded_call_is_stored_and_a_restart_continues(tmp_path: Path) -> None:
    writer = file_agent(tmp_path)
    writer.tool.word_count(text="persist me please")

    assert stored_messages(tmp_path) == writer.messages
    assert len(writer.messages) == 4

    model = ScriptedModel(["Three words."])
    reader = file_agent(tmp_path, model)
    assert reader.messages == writer.messages
    reader("How many words was that?")
    assert len(model.calls[0].messages) == 5
    reader.tool.word_count(text="again")
    stored = stored_messages(tmp_path)
    assert len(stored) == 10
    assert [m["role"] for m in stored] == ["user", "assistant"] * 5
    assert stored == reader.messages


def test_a_recorded_call_takes_the_session_lease(tmp_path: Path) -> None:
    agent = file_agent(tmp_path, fail_fast=True)
    repository = agent.session_manager.repository  # type: ignore[union-attr]

    async def hold() -> Any:
        return await repository.acquire_lease("direct", "assistant", ttl=30, wait=0)

    lease = asyncio.run(hold())
    try:
        with pytest.raises(LeaseTimeoutError):
            agent.tool.word_count(text="blocked")
        # An unrecorded call writes nothing, so it needs no lease.
        assert agent.tool.word_count(text="free", record_direct_tool_call=False)["status"] == "success"
    finally:
        asyncio.run(repository.release_lease(lease))
    assert agent.messages == []
    agent.tool.word_count(text="now it runs")
    assert len(stored_messages(tmp_path)) == 4


def test_the_recorded_shape_matches_strands(tmp_path: Path) -> None:
    from strands import Agent as StrandsAgent
    from strands import tool as strands_tool

    from helpers.strands_model import EchoStrandsModel

    @strands_tool
    def word_count(text: str) -> int:  # the same tool, for Strands
        """Count the words in a text."""
        return len(text.split())

    theirs = StrandsAgent(model=EchoStrandsModel(), tools=[word_count], callback_handler=None)
    their_result = theirs.tool.word_count(text="one two")
    ours = Agent(model=ScriptedModel([]), tools=[globals()["word_count"]], callback_handler=None)
    our_result = ours.tool.word_count(text="one two")

    def shape(messages: list[Any], use_id: str) -> str:
        plain = [{"role": m["role"], "content": m["content"]} for m in messages]
        return json.dumps(plain).replace(use_id, "ID")

    # The same four messages, whatever the tool-use id (Strands' result content is text).
    assert [m["role"] for m in ours.messages] == [m["role"] for m in theirs.messages]
    ours_text = shape(ours.messages, our_result["toolUseId"]).replace('{"json": 2}', '{"text": "2"}')
    assert ours_text == shape(theirs.messages, their_result["toolUseId"])
