"""Structured output through each provider's real SDK against the wire-format server: the
forced tool choice in each provider's own request shape, a retry after an invalid answer,
the error result the model is sent, and a session that stores and restores the turn."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from provider_wire import Reply, WireServer, eventstream_reply, json_reply, load, sse_reply
from pydantic import BaseModel

from mooring import Agent
from mooring.errors import StructuredOutputError
from mooring.models.anthropic import AnthropicModel
from mooring.models.bedrock import BedrockModel
from mooring.models.openai import OpenAIModel
from mooring.session import FileSessionManager

PROVIDERS = ["anthropic", "openai", "bedrock"]


class Weather(BaseModel):
    """The weather in one city."""

    city: str
    celsius: float


def build(provider: str, wire: WireServer) -> Any:
    if provider == "anthropic":
        return AnthropicModel("claude-test", api_key="sk-ant-test", base_url=wire.url, retry_base_delay=0.0)
    if provider == "openai":
        return OpenAIModel("gpt-test", api_key="sk-test", base_url=f"{wire.url}/v1", retry_base_delay=0.0)
    return BedrockModel("anthropic.claude-test-v1:0", endpoint_url=wire.url, retry_base_delay=0.0)


# -- one forced tool call, as each provider streams it ---------------------------------------------


def tool_call_reply(provider: str, use_id: str, name: str, tool_input: dict[str, Any]) -> Reply:
    arguments = json.dumps(tool_input)
    half = len(arguments) // 2
    pieces = [arguments[:half], arguments[half:]]  # the input arrives in fragments, as it does
    if provider == "anthropic":
        events: list[dict[str, Any]] = [
            {
                "type": "message_start",
                "message": {
                    "id": "msg_so",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-test",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 50, "output_tokens": 1},
                },
            },
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "tool_use", "id": use_id, "name": name, "input": {}},
            },
            *(
                {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": p}}
                for p in pieces
            ),
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": 20},
            },
            {"type": "message_stop"},
        ]
        return sse_reply([{"event": e["type"], "data": e} for e in events])
    if provider == "openai":

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "data": {
                    "id": "chatcmpl-so",
                    "object": "chat.completion.chunk",
                    "created": 1730000000,
                    "model": "gpt-test",
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
                    "usage": None,
                }
            }

        first = {"index": 0, "id": use_id, "type": "function", "function": {"name": name, "arguments": ""}}
        return sse_reply(
            [
                chunk({"role": "assistant", "content": None, "tool_calls": [first]}),
                *(chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in pieces),
                # A named tool_choice ends with finish_reason "stop", not "tool_calls".
                chunk({}, "stop"),
                {
                    "data": {
                        "id": "chatcmpl-so",
                        "object": "chat.completion.chunk",
                        "created": 1730000000,
                        "model": "gpt-test",
                        "choices": [],
                        "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70},
                    }
                },
                {"data": "[DONE]"},
            ]
        )
    return eventstream_reply(
        [
            {"event": "messageStart", "payload": {"role": "assistant"}},
            {
                "event": "contentBlockStart",
                "payload": {"start": {"toolUse": {"toolUseId": use_id, "name": name}}, "contentBlockIndex": 0},
            },
            *(
                {"event": "contentBlockDelta", "payload": {"delta": {"toolUse": {"input": p}}, "contentBlockIndex": 0}}
                for p in pieces
            ),
            {"event": "contentBlockStop", "payload": {"contentBlockIndex": 0}},
            {"event": "messageStop", "payload": {"stopReason": "tool_use"}},
            {"event": "metadata", "payload": {"usage": {"inputTokens": 50, "outputTokens": 20, "totalTokens": 70}}},
        ]
    )


# -- what each provider was sent -------------------------------------------------------------------


def forced_choice(provider: str, body: dict[str, Any]) -> Any:
    if provider == "bedrock":
        return body["toolConfig"].get("toolChoice")
    return body.get("tool_choice")


def expected_choice(provider: str) -> Any:
    return {
        "anthropic": {"type": "tool", "name": "Weather"},
        "openai": {"type": "function", "function": {"name": "Weather"}},
        "bedrock": {"tool": {"name": "Weather"}},
    }[provider]


def sent_schema(provider: str, body: dict[str, Any]) -> Any:
    if provider == "anthropic":
        [spec] = [t for t in body["tools"] if t["name"] == "Weather"]
        return spec["input_schema"]
    if provider == "openai":
        [spec] = [t["function"] for t in body["tools"] if t["function"]["name"] == "Weather"]
        return spec["parameters"]
    [spec] = [t["toolSpec"] for t in body["toolConfig"]["tools"] if t["toolSpec"]["name"] == "Weather"]
    return spec["inputSchema"]["json"]


def sent_error_result(provider: str, body: dict[str, Any], use_id: str) -> str:
    """The text of the error tool result the request carries for ``use_id``, checking its error flag."""
    for message in body["messages"]:
        if provider == "openai":
            if message["role"] == "tool" and message["tool_call_id"] == use_id:
                return str(message["content"])
            continue
        for block in message["content"] if isinstance(message["content"], list) else []:
            if provider == "anthropic" and block.get("type") == "tool_result" and block["tool_use_id"] == use_id:
                assert block["is_error"] is True
                return " ".join(p["text"] for p in block["content"])
            if provider == "bedrock" and "toolResult" in block and block["toolResult"]["toolUseId"] == use_id:
                assert block["toolResult"]["status"] == "error"
                return " ".join(p["text"] for p in block["toolResult"]["content"])
    raise AssertionError(f"no tool result for {use_id} in the request")


def roles_sent(provider: str, body: dict[str, Any]) -> list[str]:
    roles = [m["role"] for m in body["messages"]]
    return ["user" if r == "tool" else r for r in roles if r != "system"]


# -- the tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_structured_output_forces_the_tool_in_each_wire_format(
    provider: str, wire: WireServer, aws_credentials: None
) -> None:
    wire.queue(tool_call_reply(provider, "call_w1", "Weather", {"city": "Paris", "celsius": 21.5}))
    agent = Agent(model=build(provider, wire), callback_handler=None)

    result = agent("What is the weather in Paris?", structured_output_model=Weather)

    assert result.structured_output == Weather(city="Paris", celsius=21.5)
    assert isinstance(result.structured_output, Weather)
    assert json.loads(str(result)) == {"city": "Paris", "celsius": 21.5}
    [request] = wire.requests
    body = request.json
    assert forced_choice(provider, body) == expected_choice(provider)
    assert sent_schema(provider, body) == Weather.model_json_schema()
    assert [m["role"] for m in agent.messages] == ["user", "assistant", "user", "assistant"]
    assert agent.messages[1]["content"] == [
        {"toolUse": {"toolUseId": "call_w1", "name": "Weather", "input": {"city": "Paris", "celsius": 21.5}}}
    ]
    assert agent.messages[2]["content"][0]["toolResult"]["status"] == "success"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_invalid_answer_is_sent_back_and_the_retry_validates(
    provider: str, wire: WireServer, aws_credentials: None
) -> None:
    wire.queue(
        tool_call_reply(provider, "call_bad", "Weather", {"city": "Paris", "celsius": "warm"}),
        tool_call_reply(provider, "call_good", "Weather", {"city": "Paris", "celsius": 19}),
    )
    agent = Agent(model=build(provider, wire), callback_handler=None)

    weather = agent.structured_output(Weather, "What is the weather in Paris?")

    assert weather == Weather(city="Paris", celsius=19.0)
    first, second = (r.json for r in wire.requests)
    # The retry is forced too, and carries the validation error as an error tool result.
    assert forced_choice(provider, first) == forced_choice(provider, second) == expected_choice(provider)
    error_text = sent_error_result(provider, second, "call_bad")
    assert "celsius" in error_text and "Call Weather again" in error_text
    assert roles_sent(provider, second) == ["user", "assistant", "user"]
    assert [m["role"] for m in agent.messages] == ["user", "assistant", "user", "assistant", "user", "assistant"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_retries_are_bounded_then_structured_output_error(
    provider: str, wire: WireServer, aws_credentials: None
) -> None:
    wire.queue(
        tool_call_reply(provider, "call_1", "Weather", {"city": "Paris"}),
        tool_call_reply(provider, "call_2", "Weather", {"celsius": 3}),
    )
    agent = Agent(model=build(provider, wire), structured_output_retries=1, callback_handler=None)

    with pytest.raises(StructuredOutputError) as caught:
        agent("What is the weather?", structured_output_model=Weather)

    assert caught.value.attempts == 2
    assert caught.value.output_model is Weather
    assert [e["loc"] for e in caught.value.errors] == [("city",)]
    assert len(wire.requests) == 2  # no third call
    # The failed turn is closed, so the next prompt is a valid continuation.
    assert agent.messages[-1]["role"] == "assistant"
    assert "structured output failed" in agent.messages[-1]["content"][0]["text"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_structured_turn_is_stored_and_a_restored_agent_continues(
    provider: str, wire: WireServer, aws_credentials: None, tmp_path: Path
) -> None:
    wire.queue(
        tool_call_reply(provider, "call_bad", "Weather", {"city": "Oslo"}),
        tool_call_reply(provider, "call_good", "Weather", {"city": "Oslo", "celsius": -2}),
    )
    writer = Agent(
        model=build(provider, wire),
        agent_id="assistant",
        session_manager=FileSessionManager("structured", storage_dir=tmp_path),
        callback_handler=None,
    )
    writer.structured_output(Weather, "Weather in Oslo?")
    stored = sorted((tmp_path / "session_structured/agents/agent_assistant/messages").iterdir())
    assert len(stored) == 6

    reader = Agent(
        model=build(provider, wire),
        agent_id="assistant",
        session_manager=FileSessionManager("structured", storage_dir=tmp_path),
        callback_handler=None,
    )
    assert reader.messages == writer.messages
    wire.queue(*load(provider, "text"))
    before = len(wire.requests)
    result = reader("Thanks! Anything else?")

    assert result.stop_reason == "end_turn"
    [request] = wire.requests[before:]
    body = request.json
    # The plain turn after it forces nothing, and sends a history the provider accepts: Anthropic
    # and Bedrock refuse tool blocks without declared tools, so the output tool is declared as a
    # placeholder there.
    if provider == "openai":
        assert "tool_choice" not in body and "tools" not in body
    else:
        assert forced_choice(provider, body) is None
        assert sent_schema(provider, body) == {"type": "object", "properties": {}}
    roles = roles_sent(provider, body)
    assert roles == ["user", "assistant", "user", "assistant", "user", "assistant", "user"]
    assert len(reader.messages) == 8


@pytest.mark.parametrize("provider", PROVIDERS)
def test_with_other_tools_a_text_answer_is_followed_by_a_forced_call(
    provider: str, wire: WireServer, aws_credentials: None
) -> None:
    from mooring import tool

    @tool
    def thermometer(city: str) -> float:
        """Read the temperature in a city."""
        return 8.0

    wire.queue(*load(provider, "text"), tool_call_reply(provider, "call_w", "Weather", {"city": "Bonn", "celsius": 8}))
    agent = Agent(model=build(provider, wire), tools=[thermometer], callback_handler=None)

    assert agent.structured_output(Weather, "Weather in Bonn?") == Weather(city="Bonn", celsius=8)
    first, second = (r.json for r in wire.requests)
    # The first call leaves the model free to use its tools; after a text answer it is forced.
    assert forced_choice(provider, first) is None
    assert forced_choice(provider, second) == expected_choice(provider)
    assert "calling the Weather tool" in json.dumps(second["messages"][-1])


@pytest.mark.parametrize("provider", ["anthropic", "bedrock"])
def test_with_extended_thinking_the_tool_is_asked_for_not_forced(
    provider: str, wire: WireServer, aws_credentials: None
) -> None:
    # Claude refuses a forced tool choice while extended thinking is on.
    thinking = {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    if provider == "anthropic":
        model: Any = AnthropicModel(
            "claude-test", api_key="sk-ant-test", base_url=wire.url, additional_request_fields=thinking
        )
    else:
        model = BedrockModel("anthropic.claude-test-v1:0", endpoint_url=wire.url, additional_request_fields=thinking)
    wire.queue(tool_call_reply(provider, "call_t", "Weather", {"city": "Graz", "celsius": 11}))
    agent = Agent(model=model, callback_handler=None)

    assert agent.structured_output(Weather, "Graz?") == Weather(city="Graz", celsius=11)
    [request] = wire.requests
    assert forced_choice(provider, request.json) is None
    assert sent_schema(provider, request.json) == Weather.model_json_schema()


def test_a_model_that_refuses_the_forced_choice_is_asked_without_it(wire: WireServer, aws_credentials: None) -> None:
    # Bedrock's answer for models that take tools but no forced choice (Llama, Mistral).
    refusal = json_reply(
        400,
        {
            "message": "This model doesn't support the toolConfig.toolChoice.tool field. "
            "Remove toolConfig.toolChoice.tool and try again."
        },
        {"x-amzn-ErrorType": "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"},
    )
    wire.queue(refusal, tool_call_reply("bedrock", "call_l", "Weather", {"city": "Lima", "celsius": 19}))
    agent = Agent(model=build("bedrock", wire), callback_handler=None)

    assert agent.structured_output(Weather, "Lima?") == Weather(city="Lima", celsius=19)
    first, second = (r.json for r in wire.requests)
    assert forced_choice("bedrock", first) == {"tool": {"name": "Weather"}}
    assert forced_choice("bedrock", second) is None
    assert sent_schema("bedrock", second) == Weather.model_json_schema()
