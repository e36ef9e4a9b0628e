"""AnthropicModel through the real ``anthropic`` SDK against a local server speaking the Messages SSE format."""

from __future__ import annotations

import asyncio
import base64
import sys
from typing import Any

import pytest
from provider_wire import ADD_SPEC, WEATHER_SPEC, WireServer, load, run_stream

from mooring import Agent, tool
from mooring.errors import ContextWindowOverflowError, ModelError, ModelNotAvailableError, ModelThrottledError
from mooring.models.anthropic import AnthropicModel

MODEL = "claude-haiku-4-5"


def sent_key(headers: dict[str, str]) -> str | None:
    """The API key a request carried (SDK versions differ on the header)."""
    if "x-api-key" in headers:
        return headers["x-api-key"]
    return headers.get("authorization", "").removeprefix("Bearer ") or None


def make_model(wire: WireServer, **options: Any) -> AnthropicModel:
    options.setdefault("retry_base_delay", 0.0)
    return AnthropicModel(MODEL, api_key="sk-ant-test", base_url=wire.url, **options)


def test_plain_text_streams_and_sends_a_messages_request(wire: WireServer) -> None:
    wire.queue(*load("anthropic", "text"))
    model = make_model(wire, max_tokens=256, temperature=0.2)

    outcome = run_stream(model, system_prompt="Be brief.")

    assert outcome.message == {"role": "assistant", "content": [{"text": "Hello! How can I help you today?"}]}
    assert outcome.stop_reason == "end_turn"
    assert outcome.usage == {"inputTokens": 25, "outputTokens": 12, "totalTokens": 37}
    assert [next(iter(e)) for e in outcome.events][:2] == ["messageStart", "contentBlockStart"]
    [request] = wire.requests
    assert request.path == "/v1/messages"
    assert sent_key(request.headers) == "sk-ant-test"
    assert request.json == {
        "model": MODEL,
        "max_tokens": 256,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        "system": "Be brief.",
        "temperature": 0.2,
        "stream": True,
    }


def test_one_tool_call_assembles_input_from_json_deltas(wire: WireServer) -> None:
    wire.queue(*load("anthropic", "tool_call"))

    outcome = run_stream(make_model(wire), tool_specs=[ADD_SPEC])

    assert outcome.stop_reason == "tool_use"
    assert outcome.message["content"] == [
        {"text": "I'll add those numbers."},
        {"toolUse": {"toolUseId": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "add", "input": {"a": 2, "b": 3}}},
    ]
    assert wire.requests[0].json["tools"] == [
        {"name": "add", "description": "Add two integers.", "input_schema": ADD_SPEC["inputSchema"]["json"]}
    ]


def test_two_parallel_tool_calls(wire: WireServer) -> None:
    wire.queue(*load("anthropic", "parallel_tool_calls"))

    outcome = run_stream(make_model(wire), tool_specs=[WEATHER_SPEC])

    assert outcome.stop_reason == "tool_use"
    assert [b["toolUse"] for b in outcome.message["content"]] == [
        {"toolUseId": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}},
        {"toolUseId": "toolu_01B", "name": "get_weather", "input": {"city": "London"}},
    ]


@pytest.mark.parametrize("name", ["throttle_then_success", "overloaded_then_success", "overloaded_mid_stream"])
def test_throttling_is_retried_then_succeeds(wire: WireServer, name: str) -> None:
    wire.queue(*load("anthropic", name))

    outcome = run_stream(make_model(wire))

    assert outcome.message["content"] == [{"text": "Hello! How can I help you today?"}]
    assert len(wire.requests) == 2
    # Nothing from the failed attempt reached the caller.
    assert sum("messageStart" in e for e in outcome.events) == 1


def test_throttling_gives_up_after_max_retries(wire: WireServer) -> None:
    throttle = load("anthropic", "throttle_then_success")[0]
    wire.queue(throttle, throttle, throttle, throttle)

    with pytest.raises(ModelThrottledError, match="after 3 attempts"):
        run_stream(make_model(wire, max_retries=2))

    assert len(wire.requests) == 3  # the SDK's own retries are off: one request per attempt
    assert wire.unanswered == 1


def test_prompt_too_long_is_a_context_window_overflow(wire: WireServer) -> None:
    wire.queue(*load("anthropic", "overflow"))

    with pytest.raises(ContextWindowOverflowError, match="prompt is too long"):
        run_stream(make_model(wire))

    assert len(wire.requests) == 1


def test_thinking_becomes_reasoning_content_and_goes_back_as_thinking(wire: WireServer) -> None:
    wire.queue(*load("anthropic", "thinking"), *load("anthropic", "text"))
    model = make_model(wire, additional_request_fields={"thinking": {"type": "enabled", "budget_tokens": 1024}})

    first = run_stream(model)
    run_stream(
        model,
        [{"role": "user", "content": [{"text": "Hi"}]}, first.message, {"role": "user", "content": [{"text": "And?"}]}],
    )

    signature = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"
    assert first.message["content"] == [
        {"reasoningContent": {"reasoningText": {"text": "The user wants 2+3. That is 5.", "signature": signature}}},
        {"text": "5"},
    ]
    second = wire.requests[1].json
    assert second["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert second["messages"][1]["content"][0] == {
        "type": "thinking",
        "thinking": "The user wants 2+3. That is 5.",
        "signature": signature,
    }


def test_every_content_block_is_converted(wire: WireServer) -> None:
    wire.queue(*load("anthropic", "text"))
    png = b"\x89PNG\r\n\x1a\nfake"
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [
                {"text": "Look"},
                {"image": {"format": "png", "source": {"bytes": png}}},
                {"document": {"format": "pdf", "name": "report", "source": {"bytes": b"%PDF-1.4"}}},
                {"document": {"format": "txt", "name": "notes", "source": {"bytes": b"plain notes"}}},
                {"cachePoint": {"type": "default"}},
            ],
            "metadata": {"mooring": "kept out of the request"},
        },
        {
            "role": "assistant",
            "content": [
                {"reasoningContent": {"reasoningText": {"text": "unsigned, from another provider"}}},
                {"toolUse": {"toolUseId": "t1", "name": "add", "input": {"a": 1, "b": 2}}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "t1", "status": "success", "content": [{"json": 3}, {"text": "ok"}]}},
            ],
        },
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t2", "name": "add", "input": {}}}]},
        {
            "role": "user",
            "content": [{"toolResult": {"toolUseId": "t2", "status": "error", "content": [{"text": "bad input"}]}}],
        },
    ]

    run_stream(make_model(wire), messages)

    sent = wire.requests[0].json["messages"]
    assert sent[0] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "Look"},
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(png).decode()},
            },
            {
                "type": "document",
                "source": {
                    "type": "base64",
                    "media_type": "application/pdf",
                    "data": base64.b64encode(b"%PDF-1.4").decode(),
                },
                "title": "report",
            },
            {
                "type": "document",
                "source": {"type": "text", "media_type": "text/plain", "data": "plain notes"},
                "title": "notes",
                "cache_control": {"type": "ephemeral"},
            },
        ],
    }
    assert sent[1] == {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "t1", "name": "add", "input": {"a": 1, "b": 2}}],
    }
    assert sent[2]["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": "t1",
            "content": [{"type": "text", "text": "3"}, {"type": "text", "text": "ok"}],
            "is_error": False,
        }
    ]
    assert sent[4]["content"][0]["is_error"] is True


def test_agent_turn_with_a_tool(wire: WireServer) -> None:
    wire.queue(*load("anthropic", "tool_call"), *load("anthropic", "tool_answer"), *load("anthropic", "text"))
    calls: list[tuple[int, int]] = []

    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        calls.append((a, b))
        return a + b

    agent = Agent(model=make_model(wire), tools=[add], system_prompt="Use tools.", callback_handler=None)
    result = agent("What is 2 + 3?")

    assert calls == [(2, 3)]
    assert str(result).strip() == "2 + 3 = 5."
    assert result.stop_reason == "end_turn"
    assert agent.messages == [
        {"role": "user", "content": [{"text": "What is 2 + 3?"}]},
        {
            "role": "assistant",
            "content": [
                {"text": "I'll add those numbers."},
                {"toolUse": {"toolUseId": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "add", "input": {"a": 2, "b": 3}}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "toolResult": {
                        "toolUseId": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                        "status": "success",
                        "content": [{"json": 5}],
                    }
                }
            ],
        },
        {"role": "assistant", "content": [{"text": "2 + 3 = 5."}]},
    ]
    second = wire.requests[1].json
    assert second["messages"][2]["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "content": [{"type": "text", "text": "5"}],
            "is_error": False,
        }
    ]
    # A second invocation runs on a new event loop; the model must not reuse the first loop's
    # kept-alive connections.
    agent("Thanks")
    assert len(wire.requests) == 3
    assert agent.messages[-1] == {"role": "assistant", "content": [{"text": "Hello! How can I help you today?"}]}


def test_missing_api_key_names_the_variable() -> None:
    with pytest.raises(ModelNotAvailableError, match="ANTHROPIC_API_KEY"):
        AnthropicModel(MODEL)


def test_api_key_from_the_environment(wire: WireServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-env")
    wire.queue(*load("anthropic", "text"))

    run_stream(AnthropicModel(MODEL, base_url=wire.url))

    assert sent_key(wire.requests[0].headers) == "sk-ant-env"


def test_unreachable_endpoint_is_named(unused_port: int) -> None:
    base_url = f"http://127.0.0.1:{unused_port}"
    model = AnthropicModel(MODEL, api_key="sk-ant-test", base_url=base_url)

    with pytest.raises(ModelError, match=f"could not reach the Anthropic API at {base_url}"):
        run_stream(model)


def test_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "anthropic", None)

    with pytest.raises(ImportError, match=r"pip install 'mooring-agents\[anthropic\]'"):
        AnthropicModel(MODEL, api_key="sk-ant-test")


def test_a_client_you_pass_is_used_with_its_retries_off(wire: WireServer) -> None:
    import anthropic

    throttle = load("anthropic", "throttle_then_success")[0]
    wire.queue(throttle, throttle, throttle)
    client = anthropic.AsyncAnthropic(api_key="sk-ant-own", base_url=wire.url)  # SDK default: 2 retries
    model = AnthropicModel(MODEL, client=client, max_retries=0)

    async def stream_then_close() -> None:
        try:
            async for _ in model.stream([{"role": "user", "content": [{"text": "Hi"}]}]):
                pass
        finally:
            await client.close()  # a caller's client is the caller's to close, on the loop it used

    with pytest.raises(ModelThrottledError):
        asyncio.run(stream_then_close())

    assert len(wire.requests) == 1
    assert sent_key(wire.requests[0].headers) == "sk-ant-own"
