"""StreamAssembler folds a Converse-style stream into the message the agent stores."""

from __future__ import annotations

from typing import Any

from mooring.models import StreamAssembler, message_to_events
from mooring.types import Message


def assemble(events: list[dict[str, Any]]) -> tuple[StreamAssembler, list[str]]:
    assembler = StreamAssembler()
    streamed = [piece for piece in map(assembler.feed, events) if piece is not None]
    return assembler, streamed


def test_every_block_kind_round_trips_through_its_events() -> None:
    message: Message = {
        "role": "assistant",
        "content": [
            {"reasoningContent": {"reasoningText": {"text": "think first", "signature": "sig-1"}}},
            {"text": "Counting the words."},
            {"toolUse": {"toolUseId": "tu-1", "name": "word_count", "input": {"text": "a b c"}}},
        ],
    }
    usage = {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}
    assembler, streamed = assemble(message_to_events(message, usage=usage, chunk_size=4))
    assert assembler.message() == message
    assert "".join(streamed) == "Counting the words."  # only answer text reaches the user
    assert assembler.stop_reason == "tool_use"
    assert assembler.usage == usage


def test_a_new_kind_of_delta_closes_the_open_block_without_a_stop() -> None:
    events = [
        {"contentBlockDelta": {"delta": {"reasoningContent": {"text": "hm"}}}},
        {"contentBlockDelta": {"delta": {"reasoningContent": {"text": "m"}}}},
        {"contentBlockDelta": {"delta": {"text": "answer"}}},
        {"contentBlockDelta": {"delta": {"reasoningContent": {"text": "again"}}}},
        {"messageStop": {"stopReason": "max_tokens"}},
    ]
    assembler, streamed = assemble(events)
    assert assembler.message()["content"] == [
        {"reasoningContent": {"reasoningText": {"text": "hmm"}}},
        {"text": "answer"},
        {"reasoningContent": {"reasoningText": {"text": "again"}}},
    ]
    assert streamed == ["answer"]
    assert assembler.stop_reason == "max_tokens"


def test_tool_input_that_is_empty_or_not_json() -> None:
    events = [
        {"contentBlockStart": {"start": {"toolUse": {"toolUseId": "tu-1", "name": "ping"}}}},
        {"contentBlockStop": {}},
        {"contentBlockStart": {"start": {"toolUse": {"toolUseId": "tu-2", "name": "add"}}}},
        {"contentBlockDelta": {"delta": {"toolUse": {"input": '{"a": 1'}}}},
        {"contentBlockStop": {}},
    ]
    assembler, _ = assemble(events)
    assert assembler.message()["content"] == [
        {"toolUse": {"toolUseId": "tu-1", "name": "ping", "input": {}}},
        {"toolUse": {"toolUseId": "tu-2", "name": "add", "input": {"__unparsed__": '{"a": 1'}}},
    ]


def test_a_guardrail_redaction_replaces_the_answer_and_records_the_user_redaction() -> None:
    events = [
        {"contentBlockDelta": {"delta": {"text": "something unsafe"}}},
        {"redactContent": {"redactUserContentMessage": "[input blocked]"}},
        {"redactContent": {"redactAssistantContentMessage": "[answer blocked]"}},
        {"metadata": {}},  # no usage: the zero counts stay
    ]
    assembler, _ = assemble(events)
    assert assembler.redaction == "[input blocked]"
    assert assembler.message()["content"] == [{"text": "[answer blocked]"}]
    assert assembler.usage == {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0}
