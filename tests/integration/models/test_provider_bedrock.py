"""BedrockModel through the real boto3 ``bedrock-runtime`` client against a local server that
answers ``converse_stream`` in the AWS event-stream binary framing."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable
from typing import Any

import pytest
from provider_wire import ADD_SPEC, WEATHER_SPEC, WireServer, eventstream_message, load, run_stream

from mooring import Agent, tool
from mooring.errors import ContextWindowOverflowError, ModelError, ModelNotAvailableError, ModelThrottledError
from mooring.models.bedrock import DEFAULT_REGION, BedrockModel

MODEL = "global.anthropic.claude-haiku-4-5-20251001-v1:0"

MakeModel = Callable[..., BedrockModel]


@pytest.fixture
def make_model(wire: WireServer, aws_credentials: None) -> MakeModel:
    def make(**options: Any) -> BedrockModel:
        options.setdefault("retry_base_delay", 0.0)
        return BedrockModel(MODEL, endpoint_url=wire.url, **options)

    return make


def test_the_event_stream_encoder_is_what_botocore_decodes() -> None:
    from botocore.eventstream import EventStreamBuffer

    raw = eventstream_message({":event-type": "messageStart", ":message-type": "event"}, b'{"role":"assistant"}')
    buffer = EventStreamBuffer()
    buffer.add_data(raw + raw)

    decoded: list[Any] = list(buffer)
    assert len(decoded) == 2
    assert decoded[0].headers == {":event-type": "messageStart", ":message-type": "event"}
    assert decoded[0].payload == b'{"role":"assistant"}'


def test_plain_text_streams_through_a_signed_converse_stream_request(wire: WireServer, make_model: MakeModel) -> None:
    wire.queue(*load("bedrock", "text"))
    model = make_model(max_tokens=256, temperature=0.2, additional_request_fields={"top_k": 5})

    outcome = run_stream(model, system_prompt="Be brief.")

    assert outcome.message == {"role": "assistant", "content": [{"text": "Hello! How can I help you today?"}]}
    assert outcome.stop_reason == "end_turn"
    assert outcome.usage == {"inputTokens": 20, "outputTokens": 9, "totalTokens": 29}
    assert outcome.events[-1]["metadata"]["metrics"] == {"latencyMs": 412}
    [request] = wire.requests
    assert request.path == "/model/global.anthropic.claude-haiku-4-5-20251001-v1%3A0/converse-stream"
    assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/")
    assert "/us-east-1/bedrock/aws4_request" in request.headers["authorization"]
    assert request.json == {
        "messages": [{"role": "user", "content": [{"text": "Hi"}]}],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 256, "temperature": 0.2},
        "additionalModelRequestFields": {"top_k": 5},
    }


def test_one_tool_call(wire: WireServer, make_model: MakeModel) -> None:
    wire.queue(*load("bedrock", "tool_call"))

    outcome = run_stream(make_model(), tool_specs=[ADD_SPEC])

    assert outcome.stop_reason == "tool_use"
    assert outcome.message["content"] == [
        {"text": "I'll add those numbers."},
        {"toolUse": {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": "add", "input": {"a": 2, "b": 3}}},
    ]
    assert wire.requests[0].json["toolConfig"] == {"tools": [{"toolSpec": ADD_SPEC}]}


def test_two_parallel_tool_calls(wire: WireServer, make_model: MakeModel) -> None:
    wire.queue(*load("bedrock", "parallel_tool_calls"))

    outcome = run_stream(make_model(), tool_specs=[WEATHER_SPEC])

    assert [b["toolUse"] for b in outcome.message["content"]] == [
        {"toolUseId": "tooluse_paris", "name": "get_weather", "input": {"city": "Paris"}},
        {"toolUseId": "tooluse_london", "name": "get_weather", "input": {"city": "London"}},
    ]


@pytest.mark.parametrize("name", ["throttle_then_success", "stream_throttle_then_success"])
def test_throttling_is_retried_then_succeeds(wire: WireServer, make_model: MakeModel, name: str) -> None:
    wire.queue(*load("bedrock", name))

    outcome = run_stream(make_model())

    assert outcome.message["content"] == [{"text": "Hello! How can I help you today?"}]
    assert len(wire.requests) == 2


def test_throttling_gives_up_after_max_retries(wire: WireServer, make_model: MakeModel) -> None:
    throttle = load("bedrock", "throttle_then_success")[0]
    wire.queue(*[throttle] * 4)

    with pytest.raises(ModelThrottledError, match=r"after 4 attempts.*ThrottlingException"):
        run_stream(make_model(max_retries=3))

    assert len(wire.requests) == 4  # botocore's own retries are off


def test_input_too_long_is_a_context_window_overflow(wire: WireServer, make_model: MakeModel) -> None:
    wire.queue(*load("bedrock", "overflow"))

    with pytest.raises(ContextWindowOverflowError, match="Input is too long"):
        run_stream(make_model())

    assert len(wire.requests) == 1


def test_guardrail_block_surfaces_redaction_and_trace(wire: WireServer, make_model: MakeModel) -> None:
    wire.queue(*load("bedrock", "guardrail_blocked"))
    guardrail = {"guardrailIdentifier": "gr-8d2mx3", "guardrailVersion": "1", "trace": "enabled"}
    model = make_model(guardrail_config=guardrail, guardrail_redact_output="[Answer withheld.]")

    outcome = run_stream(model)

    assert wire.requests[0].json["guardrailConfig"] == guardrail
    redactions = [e["redactContent"] for e in outcome.events if "redactContent" in e]
    assert redactions == [
        {"redactUserContentMessage": "[User input redacted.]"},
        {"redactAssistantContentMessage": "[Answer withheld.]"},
    ]
    trace = next(e["metadata"]["trace"] for e in outcome.events if "metadata" in e)
    assert trace["guardrail"]["inputAssessment"]["gr-8d2mx3"]["topicPolicy"]["topics"][0]["action"] == "BLOCKED"
    assert outcome.stop_reason == "guardrail_intervened"
    assert outcome.message["content"] == [{"text": "[Answer withheld.]"}]


def test_guardrail_block_redacts_the_user_message_in_an_agent(wire: WireServer, make_model: MakeModel) -> None:
    wire.queue(*load("bedrock", "guardrail_blocked"))
    agent = Agent(
        model=make_model(guardrail_config={"guardrailIdentifier": "gr", "guardrailVersion": "1"}), callback_handler=None
    )

    agent("How do I invest my savings?")

    assert agent.messages[0] == {"role": "user", "content": [{"text": "[User input redacted.]"}]}


def test_request_conforms_to_converse(wire: WireServer, make_model: MakeModel) -> None:
    wire.queue(*load("bedrock", "text"))
    png = b"\x89PNG\r\n\x1a\nfake"
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [
                {"text": "Look"},
                {"image": {"format": "png", "source": {"bytes": png}}},
                {"document": {"format": "txt", "name": "notes", "source": {"bytes": b"notes"}}},
            ],
            "metadata": {"mooring": "not a Converse field"},
        },
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "snapshot", "input": {}}}]},
        {
            "role": "user",
            "content": [
                {
                    "toolResult": {
                        "toolUseId": "t1",
                        "status": "success",
                        "content": [
                            {
                                "image": {
                                    "format": "png",
                                    "source": {
                                        "bytes": {"__bytes_encoded__": True, "data": base64.b64encode(png).decode()}
                                    },
                                }
                            }
                        ],
                    }
                }
            ],
        },
    ]

    run_stream(make_model(), messages)

    sent = wire.requests[0].json["messages"]
    encoded = base64.b64encode(png).decode()  # Converse's JSON wire form of raw bytes
    assert sent[0] == {
        "role": "user",
        "content": [
            {"text": "Look"},
            {"image": {"format": "png", "source": {"bytes": encoded}}},
            {"document": {"format": "txt", "name": "notes", "source": {"bytes": base64.b64encode(b"notes").decode()}}},
        ],
    }
    assert sent[2]["content"][0]["toolResult"]["content"][0]["image"]["source"]["bytes"] == encoded


def test_agent_turn_with_a_tool(wire: WireServer, make_model: MakeModel) -> None:
    wire.queue(*load("bedrock", "tool_call"), *load("bedrock", "tool_answer"))

    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    agent = Agent(model=make_model(), tools=[add], callback_handler=None)
    result = agent("What is 2 + 3?")

    assert str(result).strip() == "2 + 3 = 5."
    assert result.usage == {"inputTokens": 930, "outputTokens": 94, "totalTokens": 1024}
    use = {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": "add", "input": {"a": 2, "b": 3}}
    assert agent.messages == [
        {"role": "user", "content": [{"text": "What is 2 + 3?"}]},
        {"role": "assistant", "content": [{"text": "I'll add those numbers."}, {"toolUse": use}]},
        {
            "role": "user",
            "content": [{"toolResult": {"toolUseId": use["toolUseId"], "status": "success", "content": [{"json": 5}]}}],
        },
        {"role": "assistant", "content": [{"text": "2 + 3 = 5."}]},
    ]
    assert json.loads(wire.requests[1].body)["messages"] == agent.messages[:3]


def test_no_credentials_says_what_to_set(wire: WireServer) -> None:
    model = BedrockModel(MODEL, region_name="us-east-1", endpoint_url=wire.url)

    with pytest.raises(
        ModelNotAvailableError, match="no AWS credentials found: run `aws configure` or set AWS_ACCESS_KEY_ID"
    ):
        run_stream(model)

    assert wire.requests == []


def test_unreachable_endpoint_is_named(aws_credentials: None, unused_port: int) -> None:
    endpoint = f"http://127.0.0.1:{unused_port}"
    model = BedrockModel(MODEL, endpoint_url=endpoint)

    with pytest.raises(ModelError, match=f"could not connect to the Bedrock endpoint {endpoint}"):
        run_stream(model)


def test_region_comes_from_argument_environment_or_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert BedrockModel(MODEL).region_name == DEFAULT_REGION == "us-west-2"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert BedrockModel(MODEL).region_name == "eu-west-1"
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    model = BedrockModel(MODEL)
    assert model.region_name == "eu-central-1"
    assert model.endpoint_url == "https://bedrock-runtime.eu-central-1.amazonaws.com"
    assert BedrockModel(MODEL, region_name="ap-southeast-2").region_name == "ap-southeast-2"


def test_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)

    with pytest.raises(ImportError, match=r"pip install 'mooring-agents\[bedrock\]'"):
        BedrockModel(MODEL)
