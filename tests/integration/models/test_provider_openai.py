"""OpenAIModel and OllamaModel through the real ``openai`` SDK against a local server speaking
the chat-completions SSE format."""

from __future__ import annotations

import asyncio
import base64
import sys
from typing import Any

import pytest
from provider_wire import ADD_SPEC, WEATHER_SPEC, WireServer, load, run_stream

from mooring import Agent, tool
from mooring.errors import ContextWindowOverflowError, ModelError, ModelNotAvailableError, ModelThrottledError
from mooring.models.openai import OllamaModel, OpenAIModel

MODEL = "gpt-4o-mini"


def make_model(wire: WireServer, **options: Any) -> OpenAIModel:
    options.setdefault("retry_base_delay", 0.0)
    return OpenAIModel(MODEL, api_key="sk-test", base_url=f"{wire.url}/v1", **options)


def test_plain_text_streams_and_sends_a_chat_completions_request(wire: WireServer) -> None:
    wire.queue(*load("openai", "text"))
    model = make_model(wire, max_tokens=256, temperature=0.2)

    outcome = run_stream(model, system_prompt="Be brief.")

    assert outcome.message == {"role": "assistant", "content": [{"text": "Hello! How can I help you today?"}]}
    assert outcome.stop_reason == "end_turn"
    assert outcome.usage == {"inputTokens": 20, "outputTokens": 9, "totalTokens": 29}
    [request] = wire.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.json == {
        "model": MODEL,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 256,
        "temperature": 0.2,
    }


def test_one_tool_call_accumulates_argument_fragments(wire: WireServer) -> None:
    wire.queue(*load("openai", "tool_call"))

    outcome = run_stream(make_model(wire), tool_specs=[ADD_SPEC])

    assert outcome.stop_reason == "tool_use"
    assert outcome.message["content"] == [
        {"toolUse": {"toolUseId": "call_Nq2Cqv1mS6", "name": "add", "input": {"a": 2, "b": 3}}}
    ]
    assert wire.requests[0].json["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "add",
                "description": "Add two integers.",
                "parameters": ADD_SPEC["inputSchema"]["json"],
            },
        }
    ]


def test_two_parallel_tool_calls_with_interleaved_fragments(wire: WireServer) -> None:
    wire.queue(*load("openai", "parallel_tool_calls"))

    outcome = run_stream(make_model(wire), tool_specs=[WEATHER_SPEC])

    assert outcome.stop_reason == "tool_use"
    assert [b["toolUse"] for b in outcome.message["content"]] == [
        {"toolUseId": "call_paris", "name": "get_weather", "input": {"city": "Paris"}},
        {"toolUseId": "call_london", "name": "get_weather", "input": {"city": "London"}},
    ]


def test_rate_limit_is_retried_then_succeeds(wire: WireServer) -> None:
    wire.queue(*load("openai", "throttle_then_success"))

    outcome = run_stream(make_model(wire))

    assert outcome.message["content"] == [{"text": "Hello! How can I help you today?"}]
    assert len(wire.requests) == 2


def test_rate_limit_gives_up_after_max_retries(wire: WireServer) -> None:
    throttle = load("openai", "throttle_then_success")[0]
    wire.queue(throttle, throttle)

    with pytest.raises(ModelThrottledError, match="after 2 attempts"):
        run_stream(make_model(wire, max_retries=1))

    assert len(wire.requests) == 2


def test_exhausted_quota_is_not_retried(wire: WireServer) -> None:
    wire.queue(*load("openai", "quota"))

    with pytest.raises(ModelError, match="quota") as caught:
        run_stream(make_model(wire))

    assert not isinstance(caught.value, ModelThrottledError)
    assert len(wire.requests) == 1


def test_context_length_exceeded_is_a_context_window_overflow(wire: WireServer) -> None:
    wire.queue(*load("openai", "overflow"))

    with pytest.raises(ContextWindowOverflowError, match="maximum context length"):
        run_stream(make_model(wire))


def test_every_content_block_is_converted(wire: WireServer) -> None:
    wire.queue(*load("openai", "text"))
    png = b"\x89PNG\r\n\x1a\nfake"
    stored_png = {"__bytes_encoded__": True, "data": base64.b64encode(png).decode()}
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [
                {"text": "Look"},
                {"image": {"format": "png", "source": {"bytes": png}}},
                {"document": {"format": "md", "name": "notes", "source": {"bytes": b"# Notes"}}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"reasoningContent": {"reasoningText": {"text": "thinking", "signature": "sig"}}},
                {"text": "Adding."},
                {"toolUse": {"toolUseId": "t1", "name": "add", "input": {"a": 1, "b": 2}}},
                {"toolUse": {"toolUseId": "t2", "name": "snapshot", "input": {}}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "t1", "status": "success", "content": [{"json": 3}]}},
                {
                    "toolResult": {
                        "toolUseId": "t2",
                        "status": "success",
                        "content": [
                            {"text": "a picture"},
                            {"image": {"format": "png", "source": {"bytes": stored_png}}},
                        ],
                    }
                },
                {"text": "Go on"},
            ],
        },
    ]

    run_stream(make_model(wire), messages)

    data_url = "data:image/png;base64," + base64.b64encode(png).decode()
    assert wire.requests[0].json["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look"},
                {"type": "image_url", "image_url": {"url": data_url}},
                {"type": "text", "text": "[document: notes]\n# Notes"},
            ],
        },
        {
            "role": "assistant",
            "content": "Adding.",
            "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}},
                {"id": "t2", "type": "function", "function": {"name": "snapshot", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "3"},
        {"role": "tool", "tool_call_id": "t2", "content": "a picture\n[image attached below]"},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": data_url}}, {"type": "text", "text": "Go on"}],
        },
    ]


def test_agent_turn_with_a_tool(wire: WireServer) -> None:
    wire.queue(*load("openai", "tool_call"), *load("openai", "tool_answer"), *load("openai", "text"))

    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    agent = Agent(model=make_model(wire), tools=[add], callback_handler=None)
    result = agent("What is 2 + 3?")

    assert str(result).strip() == "2 + 3 = 5."
    assert agent.messages == [
        {"role": "user", "content": [{"text": "What is 2 + 3?"}]},
        {
            "role": "assistant",
            "content": [{"toolUse": {"toolUseId": "call_Nq2Cqv1mS6", "name": "add", "input": {"a": 2, "b": 3}}}],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "call_Nq2Cqv1mS6", "status": "success", "content": [{"json": 5}]}}
            ],
        },
        {"role": "assistant", "content": [{"text": "2 + 3 = 5."}]},
    ]
    assert wire.requests[1].json["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_Nq2Cqv1mS6",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_Nq2Cqv1mS6", "content": "5"},
    ]
    agent("Thanks")  # a second invocation, on a new event loop
    assert agent.messages[-1] == {"role": "assistant", "content": [{"text": "Hello! How can I help you today?"}]}


def test_missing_api_key_names_the_variable() -> None:
    with pytest.raises(ModelNotAvailableError, match="OPENAI_API_KEY"):
        OpenAIModel(MODEL)


def test_a_custom_base_url_needs_no_key(wire: WireServer) -> None:
    wire.queue(*load("openai", "text"))

    run_stream(OpenAIModel("Qwen/Qwen3-8B", base_url=f"{wire.url}/v1", retry_base_delay=0))

    assert wire.requests[0].json["model"] == "Qwen/Qwen3-8B"


def test_unreachable_server_is_named(unused_port: int) -> None:
    model = OpenAIModel(MODEL, base_url=f"http://127.0.0.1:{unused_port}/v1")

    with pytest.raises(ModelError, match=f"127.0.0.1:{unused_port}/v1.*is the server running"):
        run_stream(model)


# -- Ollama ---------------------------------------------------------------------------------------


def test_ollama_quirks_tool_call_in_one_chunk_reasoning_and_stop(
    wire: WireServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", wire.url)
    wire.queue(*load("openai", "ollama_tool_call"))
    model = OllamaModel("llama3.2", retry_base_delay=0)

    outcome = run_stream(model, tool_specs=[ADD_SPEC])

    assert model.base_url == f"{wire.url}/v1/"
    assert wire.requests[0].path == "/v1/chat/completions"
    assert wire.requests[0].headers["authorization"] == "Bearer ollama"
    assert outcome.stop_reason == "tool_use"  # Ollama says "stop" after tool calls
    assert outcome.message["content"] == [
        {"reasoningContent": {"reasoningText": {"text": "Need the add tool."}}},
        {"toolUse": {"toolUseId": "call_kq1c4tmr", "name": "add", "input": {"a": 2, "b": 3}}},
    ]


def test_ollama_not_running_says_how_to_start_it(unused_port: int) -> None:
    model = OllamaModel("llama3.2", host=f"127.0.0.1:{unused_port}")

    with pytest.raises(ModelError, match="is Ollama running\\? start it with `ollama serve`"):
        run_stream(model)


def test_ollama_missing_model_says_how_to_pull_it(wire: WireServer) -> None:
    wire.queue(*load("openai", "ollama_model_not_found"))

    with pytest.raises(ModelNotAvailableError, match=r"ollama pull llama3\.2"):
        run_stream(OllamaModel("llama3.2", host=wire.url))


def test_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)

    with pytest.raises(ImportError, match=r"pip install 'mooring-agents\[openai\]'"):
        OpenAIModel(MODEL, api_key="sk-test")


def test_a_client_you_pass_is_used_with_its_retries_off(wire: WireServer) -> None:
    import openai

    throttle = load("openai", "throttle_then_success")[0]
    wire.queue(throttle, throttle, throttle)
    client = openai.AsyncOpenAI(api_key="sk-own", base_url=f"{wire.url}/v1")  # SDK default: 2 retries
    model = OpenAIModel(MODEL, client=client, max_retries=0)

    async def stream_then_close() -> None:
        try:
            async for _ in model.stream([{"role": "user", "content": [{"text": "Hi"}]}]):
                pass
        finally:
            await client.close()  # a caller's client is the caller's to close, on the loop it used

    with pytest.raises(ModelThrottledError):
        asyncio.run(stream_then_close())

    assert len(wire.requests) == 1
    assert wire.requests[0].headers["authorization"] == "Bearer sk-own"
