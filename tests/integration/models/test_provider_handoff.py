"""History written by one provider's turn, persisted and restored, is valid input for another."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from provider_wire import WireServer, load

from mooring import Agent, tool
from mooring.models.anthropic import AnthropicModel
from mooring.models.bedrock import BedrockModel
from mooring.models.openai import OpenAIModel
from mooring.session import FileSessionManager

PROVIDERS = ["anthropic", "openai", "bedrock"]


def build(provider: str, wire: WireServer) -> Any:
    if provider == "anthropic":
        return AnthropicModel("claude-test", api_key="sk-ant-test", base_url=wire.url, retry_base_delay=0.0)
    if provider == "openai":
        return OpenAIModel("gpt-test", api_key="sk-test", base_url=f"{wire.url}/v1", retry_base_delay=0.0)
    return BedrockModel("anthropic.claude-test-v1:0", endpoint_url=wire.url, retry_base_delay=0.0)


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def tool_use_id_sent(provider: str, body: dict[str, Any]) -> list[str]:
    """The tool-use ids a provider request carries, each in that provider's own shape."""
    found = []
    for message in body["messages"]:
        content = message.get("content")
        if provider == "openai":
            found += [call["id"] for call in message.get("tool_calls") or []]
            if message["role"] == "tool":
                found.append(message["tool_call_id"])
        elif provider == "anthropic":
            for block in content if isinstance(content, list) else []:
                if block.get("type") in ("tool_use", "tool_result"):
                    found.append(block.get("id") or block.get("tool_use_id"))
        else:
            for block in content:
                if "toolUse" in block:
                    found.append(block["toolUse"]["toolUseId"])
                if "toolResult" in block:
                    found.append(block["toolResult"]["toolUseId"])
    return found


@pytest.mark.parametrize(("first", "second"), [(a, b) for a in PROVIDERS for b in PROVIDERS if a != b])
def test_a_tool_turn_from_one_provider_feeds_another(
    first: str, second: str, wire: WireServer, aws_credentials: None, tmp_path: Path
) -> None:
    wire.queue(*load(first, "tool_call"), *load(first, "tool_answer"))
    writer = Agent(
        model=build(first, wire),
        agent_id="assistant",
        tools=[add],
        session_manager=FileSessionManager("handoff", storage_dir=tmp_path),
        callback_handler=None,
    )
    writer("What is 2 + 3?")
    use_id = writer.messages[1]["content"][-1]["toolUse"]["toolUseId"]

    wire.queue(*load(second, "text"))
    before = len(wire.requests)
    reader = Agent(
        model=build(second, wire),
        agent_id="assistant",
        tools=[add],
        session_manager=FileSessionManager("handoff", storage_dir=tmp_path),
        callback_handler=None,
    )
    assert reader.messages == writer.messages
    result = reader("Thanks!")
    assert result.stop_reason == "end_turn"
    [request] = wire.requests[before:]
    body = json.loads(request.body)
    # The restored tool call and its result both reach the second provider, converted to its format.
    assert tool_use_id_sent(second, body) == [use_id, use_id]
    assert "Thanks!" in request.body.decode()


RICH_HISTORY: list[Any] = [
    {"role": "user", "content": [{"text": "look at this"}, {"cachePoint": {"type": "default"}}]},
    {
        "role": "assistant",
        "content": [
            {"text": "adding"},
            {"toolUse": {"toolUseId": "t1", "name": "add", "input": {"a": 2, "b": 3}}},
        ],
    },
    {
        "role": "user",
        "content": [
            {"toolResult": {"toolUseId": "t1", "status": "success", "content": [{"json": {"sum": 5}}, {"text": "5"}]}},
        ],
    },
    {"role": "assistant", "content": [{"text": "it is 5"}]},
]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_provider_never_changes_the_history_it_reads(provider: str, wire: WireServer, aws_credentials: None) -> None:
    # The model gets the agent's own message dicts, not copies: formatting a request must
    # build new structures and leave every stored message exactly as it was.
    agent = Agent(model=build(provider, wire), tools=[add], messages=RICH_HISTORY, callback_handler=None)
    before = copy.deepcopy(agent.messages)
    wire.queue(*load(provider, "text"))
    agent("and now?")
    assert agent.messages[: len(before)] == before
