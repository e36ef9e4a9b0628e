"""Structured output with the test doubles and the file store: the loop, the retries, what is
stored, and a restart in a new Agent reading the same session."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Sequence
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from mooring import Agent, tool
from mooring.errors import ModelError, StructuredOutputError
from mooring.models import ScriptedModel, message_to_events, tool_call
from mooring.session import FileSessionManager
from mooring.types import Message, StreamEvent


class Weather(BaseModel):
    """The weather in one city."""

    city: str
    celsius: float


class Size(str, Enum):
    small = "small"
    large = "large"


class Item(BaseModel):
    name: str
    quantity: int


class Order(BaseModel):
    customer: str
    size: Size
    items: list[Item]
    gift: bool
    note: str | None = None
    shipping: Item


def roles(agent: Agent) -> list[str]:
    return [m["role"] for m in agent.messages]


def assert_alternates(messages: Sequence[Message]) -> None:
    assert messages[0]["role"] == "user" and messages[-1]["role"] == "assistant"
    for before, after in itertools.pairwise(messages):
        assert before["role"] != after["role"], messages


def file_agent(tmp_path: Path, model: Any, **options: Any) -> Agent:
    return Agent(
        model=model,
        agent_id="assistant",
        session_manager=FileSessionManager("so", storage_dir=tmp_path),
        callback_handler=None,
        **options,
    )


def stored_messages(tmp_path: Path) -> list[dict[str, Any]]:
    folder = tmp_path / "session_so/agents/agent_assistant/messages"
    files = sorted(folder.iterdir(), key=lambda p: int(p.stem.split("_")[1]))
    return [json.loads(p.read_text())["message"] for p in files]


def test_the_offline_model_fills_the_schema() -> None:
    agent = Agent(callback_handler=None)  # the offline model

    order = agent.structured_output(Order, 'An order for "Ada" of 3 things')

    assert isinstance(order, Order)
    assert order.customer == "Ada"
    assert order.size is Size.small
    assert order.shipping.quantity == 3
    assert_alternates(agent.messages)
    assert len(agent.messages) == 4


def test_a_text_answer_is_asked_again_for_the_tool() -> None:
    model = ScriptedModel(["It is sunny in Rome.", [tool_call("Weather", {"city": "Rome", "celsius": 25})]])
    agent = Agent(model=model, callback_handler=None)

    result = agent("Weather in Rome?", structured_output_model=Weather)

    assert result.structured_output == Weather(city="Rome", celsius=25)
    assert result.stop_reason == "end_turn"
    assert roles(agent) == ["user", "assistant", "user", "assistant", "user", "assistant"]
    assert "calling the Weather tool" in agent.messages[2]["content"][0]["text"]
    assert [c.tool_choice for c in model.calls] == [{"tool": {"name": "Weather"}}] * 2
    assert model.calls[0].tool_specs[-1]["inputSchema"]["json"] == Weather.model_json_schema()
    assert model.calls[0].tool_specs[-1]["description"] == "The weather in one city."


def test_other_tools_run_in_the_same_turn() -> None:
    @tool
    def thermometer(city: str) -> float:
        """Read the temperature in a city."""
        return 17.5

    model = ScriptedModel(
        [[tool_call("thermometer", {"city": "Lyon"})], [tool_call("Weather", {"city": "Lyon", "celsius": 17.5})]]
    )
    agent = Agent(model=model, tools=[thermometer], callback_handler=None)

    weather = agent.structured_output(Weather, "Weather in Lyon?")

    assert weather == Weather(city="Lyon", celsius=17.5)
    assert agent.messages[2]["content"][0]["toolResult"]["content"] == [{"json": 17.5}]
    assert [s["name"] for s in model.calls[0].tool_specs] == ["thermometer", "Weather"]
    # With other tools the model may call them first: nothing is forced until an attempt fails.
    assert [c.tool_choice for c in model.calls] == [None, None]
    # The output tool is only offered for the structured turn.
    model.responses.append("plain")
    agent("and now?")
    assert [s["name"] for s in model.calls[-1].tool_specs] == ["thermometer"]
    assert model.calls[-1].tool_choice is None


def test_with_other_tools_a_text_answer_makes_the_next_call_forced() -> None:
    model = ScriptedModel(["Sunny, 30 degrees.", [tool_call("Weather", {"city": "Rome", "celsius": 30})]])
    agent = Agent(model=model, tools=[tool(name="thermometer")(lambda city: 1.0)], callback_handler=None)

    assert agent.structured_output(Weather, "Rome?") == Weather(city="Rome", celsius=30)
    assert [c.tool_choice for c in model.calls] == [None, {"tool": {"name": "Weather"}}]


def test_text_answers_use_up_the_retries() -> None:
    model = ScriptedModel(["no", "still no", "never"])
    agent = Agent(model=model, structured_output_retries=2, callback_handler=None)

    with pytest.raises(StructuredOutputError, match="after 3 attempts") as caught:
        agent.structured_output(Weather, "Weather?")

    assert isinstance(caught.value, ModelError)
    assert caught.value.attempts == 3 and caught.value.errors == []
    assert model.remaining == 0
    assert_alternates(agent.messages)


def test_async_variants_and_the_stream() -> None:
    model = ScriptedModel([[tool_call("Weather", {"city": "Nice", "celsius": 20})]], repeat_last=True)
    agent = Agent(model=model, callback_handler=None)

    async def go() -> tuple[Any, Any, list[dict[str, Any]]]:
        weather = await agent.structured_output_async(Weather, "Nice?")
        result = await agent.invoke_async("Nice again?", structured_output_model=Weather)
        events = [e async for e in agent.stream_async("and again?", structured_output_model=Weather)]
        return weather, result, events

    weather, result, events = asyncio.run(go())
    assert weather == result.structured_output == Weather(city="Nice", celsius=20)
    assert events[-1]["result"].structured_output == weather
    assert any("tool_result" in e for e in events)
    assert_alternates(agent.messages)


def test_without_a_prompt_the_conversation_so_far_is_structured() -> None:
    model = ScriptedModel(["It is 12 degrees in Bern.", [tool_call("Weather", {"city": "Bern", "celsius": 12})]])
    agent = Agent(model=model, callback_handler=None)
    agent("Weather in Bern?")

    weather = agent.structured_output(Weather)

    assert weather == Weather(city="Bern", celsius=12)
    assert "calling the Weather tool" in agent.messages[2]["content"][0]["text"]
    assert_alternates(agent.messages)


class PlainModel:
    """A custom model whose stream() has no tool_choice keyword."""

    def __init__(self) -> None:
        self.specs: list[Any] = []

    async def stream(
        self, messages: Sequence[Message], tool_specs: Any = None, system_prompt: str | None = None
    ) -> AsyncIterator[StreamEvent]:
        self.specs.append(tool_specs)
        reply = {"role": "assistant", "content": [tool_call("Weather", {"city": "Riga", "celsius": 4})]}
        for event in message_to_events(reply):
            yield event


def test_a_model_without_tool_choice_is_asked_in_words() -> None:
    model = PlainModel()
    agent = Agent(model=model, callback_handler=None)

    assert agent.structured_output(Weather, "Riga?") == Weather(city="Riga", celsius=4)
    assert model.specs[0][-1]["name"] == "Weather"


def test_bad_arguments_are_refused_before_anything_runs() -> None:
    clash = tool(name="Weather")(lambda city: city)
    agent = Agent(model=ScriptedModel([]), tools=[clash], callback_handler=None)
    with pytest.raises(ValueError, match="already has a tool named 'Weather'"):
        agent.structured_output(Weather, "x")
    with pytest.raises(TypeError, match="pydantic BaseModel subclass"):
        agent("x", structured_output_model=dict)  # type: ignore[arg-type]
    assert agent.messages == []


def test_a_structured_turn_is_stored_and_restored(tmp_path: Path) -> None:
    model = ScriptedModel(
        [[tool_call("Weather", {"city": "Oslo"})], [tool_call("Weather", {"city": "Oslo", "celsius": -2})]]
    )
    writer = file_agent(tmp_path, model)
    assert writer.structured_output(Weather, "Oslo?") == Weather(city="Oslo", celsius=-2)

    assert stored_messages(tmp_path) == writer.messages
    assert_alternates(stored_messages(tmp_path))
    assert json.loads(stored_messages(tmp_path)[-1]["content"][0]["text"]) == {"city": "Oslo", "celsius": -2.0}

    reader_model = ScriptedModel(["You asked about Oslo."])
    reader = file_agent(tmp_path, reader_model)
    assert reader.messages == writer.messages
    reader("What did I ask?")
    assert len(reader_model.calls[0].messages) == 7  # the whole structured turn, then the prompt
    assert_alternates(stored_messages(tmp_path))
    assert len(stored_messages(tmp_path)) == 8


def test_a_failed_structured_turn_leaves_a_valid_session(tmp_path: Path) -> None:
    model = ScriptedModel([[tool_call("Weather", {"city": "Oslo"})], [tool_call("Weather", {"celsius": 1})]])
    writer = file_agent(tmp_path, model, structured_output_retries=1)
    with pytest.raises(StructuredOutputError) as caught:
        writer.structured_output(Weather, "Oslo?")
    assert [e["loc"] for e in caught.value.errors] == [("city",)]

    stored = stored_messages(tmp_path)
    assert stored == writer.messages
    assert_alternates(stored)
    assert "structured output failed" in stored[-1]["content"][0]["text"]

    reader = file_agent(tmp_path, ScriptedModel([[tool_call("Weather", {"city": "Oslo", "celsius": 1})]]))
    assert reader.messages == writer.messages
    assert reader.structured_output(Weather, "Try again?") == Weather(city="Oslo", celsius=1)
    assert_alternates(stored_messages(tmp_path))
