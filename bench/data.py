"""Deterministic conversation data and the zero-latency models both SDKs are driven with.

Every stored history is made of four-message tool turns (prompt, toolUse, toolResult,
reply) of realistic size (about 250 bytes of compact JSON per message, so 10,000 messages
are about 2.5 MB). Sizes used by the bench (100, 1,000, 2,000,
10,000) are multiples of four, so a 40-message window always starts at a user prompt.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

AGENT_ID = "bench"
WINDOW = 40

_FILLER = (
    "The quick brown fox jumps over the lazy dog while the harbour master checks every mooring line "
    "twice before the tide turns, because a loose line is how boats drift away at night. "
)


def _text(prefix: str, length: int) -> str:
    body = (_FILLER * (length // len(_FILLER) + 1))[: max(length - len(prefix), 0)]
    return prefix + body


def turn_messages(turn: int) -> list[dict[str, Any]]:
    """The four messages of stored turn ``turn``."""
    use_id = f"tooluse_{turn:08d}"
    return [
        {"role": "user", "content": [{"text": _text(f"Question {turn}: ", 140)}]},
        {
            "role": "assistant",
            "content": [
                {"toolUse": {"toolUseId": use_id, "name": "lookup", "input": {"query": f"q{turn}", "page": 1}}}
            ],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": use_id, "status": "success", "content": [{"text": _text("", 180)}]}}
            ],
        },
        {"role": "assistant", "content": [{"text": _text(f"Answer {turn}: ", 260)}]},
    ]


def history(n: int) -> list[dict[str, Any]]:
    """The first ``n`` messages of the canonical history (``n`` a multiple of 4)."""
    out: list[dict[str, Any]] = []
    turn = 0
    while len(out) < n:
        out.extend(turn_messages(turn))
        turn += 1
    return out[:n]


def message_at(index: int) -> dict[str, Any]:
    """Message ``index`` of the canonical history, without building the ones before it."""
    return turn_messages(index // 4)[index % 4]


REPLY_TEXT = _text("Reply: ", 260)


def reply_for(messages: Sequence[Any], *, tools: bool) -> dict[str, Any]:
    """What the scripted model answers: with ``tools``, a ``bump`` call tagged with the prompt
    text first and ``done: <tag>`` after its result; otherwise a plain text reply."""
    last = messages[-1]
    result = next((b["toolResult"] for b in last["content"] if "toolResult" in b), None)
    if not tools:
        return {"role": "assistant", "content": [{"text": REPLY_TEXT}]}
    if result is not None:
        return {"role": "assistant", "content": [{"text": "done: " + result["content"][0]["text"]}]}
    tag = last["content"][0]["text"]
    return {
        "role": "assistant",
        "content": [{"toolUse": {"toolUseId": f"use-{tag}", "name": "bump", "input": {"tag": tag}}}],
    }


def stream_events(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Converse stream events for ``message``; the same events go to both SDKs."""
    events: list[dict[str, Any]] = [{"messageStart": {"role": "assistant"}}]
    stop = "end_turn"
    for index, block in enumerate(message["content"]):
        if "toolUse" in block:
            stop = "tool_use"
            use = block["toolUse"]
            start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
            events.append({"contentBlockStart": {"start": start, "contentBlockIndex": index}})
            delta = {"toolUse": {"input": json.dumps(use["input"])}}
            events.append({"contentBlockDelta": {"delta": delta, "contentBlockIndex": index}})
        else:
            events.append({"contentBlockStart": {"start": {}, "contentBlockIndex": index}})
            events.append({"contentBlockDelta": {"delta": {"text": block["text"]}, "contentBlockIndex": index}})
        events.append({"contentBlockStop": {"contentBlockIndex": index}})
    events.append({"messageStop": {"stopReason": stop}})
    events.append(
        {"metadata": {"usage": {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0}, "metrics": {"latencyMs": 0}}}
    )
    return events


class MooringTurnModel:
    """A zero-latency model for mooring's Agent (structurally a ``mooring.models.Model``)."""

    def __init__(self, *, tools: bool = False) -> None:
        self.tools = tools

    async def stream(
        self, messages: Sequence[Any], tool_specs: Any = None, system_prompt: Any = None
    ) -> AsyncIterator[dict[str, Any]]:
        for event in stream_events(reply_for(messages, tools=self.tools)):
            yield event


def strands_model(*, tools: bool = False) -> Any:
    """The same zero-latency model as a ``strands.models.Model`` subclass.

    Defined inside a function so processes that only run mooring never import strands.
    """
    from strands.models.model import Model

    class StrandsTurnModel(Model):  # type: ignore[misc]
        def update_config(self, **model_config: Any) -> None:
            return None

        def get_config(self) -> Any:
            return {}

        def structured_output(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError

        async def stream(
            self, messages: Any, tool_specs: Any = None, system_prompt: Any = None, **kwargs: Any
        ) -> AsyncIterator[Any]:
            for event in stream_events(reply_for(messages, tools=tools)):
                yield event

    return StrandsTurnModel()
