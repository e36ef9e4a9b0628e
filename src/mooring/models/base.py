"""The Model protocol and the Converse-style stream event helpers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from mooring.types import ContentBlock, Message, StreamEvent


@runtime_checkable
class Model(Protocol):
    """A model streams Converse-style events for a conversation.

    Events are dicts with one key: ``messageStart``, ``contentBlockStart``,
    ``contentBlockDelta``, ``contentBlockStop``, ``messageStop`` (with ``stopReason``),
    ``metadata`` (with ``usage``), or ``redactContent``. Errors are raised as
    :class:`mooring.errors.ModelError` subclasses.

    ``messages`` is the agent's own history (a fresh list of the same message dicts, not a
    copy): read it, never change a message or a block in place. A model that needs a
    changed version builds new dicts, as every provider here does when it formats a request.

    A model may also take a keyword-only ``tool_choice`` (every model mooring ships does),
    Converse-style: ``{"tool": {"name": NAME}}`` means the model must call that tool
    (structured output sends it), ``{"any": {}}`` some tool, ``{"auto": {}}`` or ``None`` the
    model's own choice. The agent passes it only to a model whose ``stream`` accepts it; one
    that leaves it out is asked for the tool in words only.
    """

    def stream(
        self,
        messages: Sequence[Message],
        tool_specs: Sequence[dict[str, Any]] | None = None,
        system_prompt: str | None = None,
    ) -> AsyncIterator[StreamEvent]: ...


def message_to_events(
    message: Message | dict[str, Any],
    stop_reason: str | None = None,
    usage: dict[str, int] | None = None,
    chunk_size: int = 0,
) -> list[StreamEvent]:
    """The event sequence a streaming model would emit for ``message``.

    ``chunk_size`` > 0 splits text into deltas of that many characters.
    """
    events: list[StreamEvent] = [{"messageStart": {"role": "assistant"}}]
    has_tool = False
    for index, block in enumerate(message["content"]):
        if "text" in block:
            events.append({"contentBlockStart": {"start": {}, "contentBlockIndex": index}})
            text = block["text"]
            pieces = [text[i : i + chunk_size] for i in range(0, len(text), chunk_size)] if chunk_size else [text]
            for piece in pieces or [""]:
                events.append({"contentBlockDelta": {"delta": {"text": piece}, "contentBlockIndex": index}})
        elif "toolUse" in block:
            has_tool = True
            use = block["toolUse"]
            events.append(
                {
                    "contentBlockStart": {
                        "start": {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}},
                        "contentBlockIndex": index,
                    }
                }
            )
            events.append(
                {
                    "contentBlockDelta": {
                        "delta": {"toolUse": {"input": json.dumps(use["input"])}},
                        "contentBlockIndex": index,
                    }
                }
            )
        elif "reasoningContent" in block:
            reasoning = block["reasoningContent"].get("reasoningText", {})
            events.append({"contentBlockStart": {"start": {}, "contentBlockIndex": index}})
            delta: dict[str, Any] = {"text": reasoning.get("text", "")}
            events.append({"contentBlockDelta": {"delta": {"reasoningContent": delta}, "contentBlockIndex": index}})
            if reasoning.get("signature"):
                events.append(
                    {
                        "contentBlockDelta": {
                            "delta": {"reasoningContent": {"signature": reasoning["signature"]}},
                            "contentBlockIndex": index,
                        }
                    }
                )
        else:
            continue
        events.append({"contentBlockStop": {"contentBlockIndex": index}})
    events.append({"messageStop": {"stopReason": stop_reason or ("tool_use" if has_tool else "end_turn")}})
    events.append({"metadata": {"usage": usage or {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0}}})
    return events


@dataclass
class StreamAssembler:
    """Folds stream events into the assistant message, the stop reason and usage."""

    content: list[ContentBlock] = field(default_factory=list)
    stop_reason: str = "end_turn"
    usage: dict[str, int] = field(default_factory=lambda: {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0})
    redaction: str | None = None
    _kind: str | None = None
    _text: str = ""
    _tool: dict[str, Any] | None = None
    _tool_input: str = ""
    _reasoning: dict[str, Any] | None = None

    def feed(self, event: StreamEvent) -> str | None:
        """Consume one event; returns any answer text it carried (for streaming to the user)."""
        if "contentBlockStart" in event:
            self._start_block(event["contentBlockStart"].get("start", {}))
        elif "contentBlockDelta" in event:
            return self._add_delta(event["contentBlockDelta"]["delta"])
        elif "contentBlockStop" in event:
            self._close()
        elif "messageStop" in event:
            self._close()
            self.stop_reason = event["messageStop"].get("stopReason", "end_turn")
        elif "metadata" in event:
            usage = event["metadata"].get("usage")
            if usage:
                self.usage = {k: int(usage.get(k, 0)) for k in ("inputTokens", "outputTokens", "totalTokens")}
        elif "redactContent" in event:
            self._redact(event["redactContent"])
        return None

    def _start_block(self, start: dict[str, Any]) -> None:
        self._close()
        if "toolUse" in start:
            self._kind, self._tool, self._tool_input = "toolUse", dict(start["toolUse"]), ""

    def _add_delta(self, delta: dict[str, Any]) -> str | None:
        if "text" in delta:
            if self._kind not in (None, "text"):
                self._close()
            self._kind = "text"
            self._text += delta["text"]
            return str(delta["text"])
        if "toolUse" in delta:
            self._kind = "toolUse"
            self._tool_input += delta["toolUse"].get("input", "")
        elif "reasoningContent" in delta:
            self._add_reasoning(delta["reasoningContent"])
        return None

    def _add_reasoning(self, rc: dict[str, Any]) -> None:
        if self._kind != "reasoning" or self._reasoning is None:
            self._close()
            self._kind, self._reasoning = "reasoning", {"text": ""}
        self._reasoning["text"] += rc.get("text", "")
        if "signature" in rc:
            self._reasoning["signature"] = rc["signature"]

    def _redact(self, redact: dict[str, Any]) -> None:
        if "redactUserContentMessage" in redact:
            self.redaction = redact["redactUserContentMessage"]
        if "redactAssistantContentMessage" in redact:
            self._close()
            self.content = [{"text": redact["redactAssistantContentMessage"]}]

    def _close(self) -> None:
        if self._kind == "text":
            self.content.append({"text": self._text})
        elif self._kind == "toolUse" and self._tool is not None:
            try:
                tool_input = json.loads(self._tool_input) if self._tool_input.strip() else {}
            except json.JSONDecodeError:
                tool_input = {"__unparsed__": self._tool_input}
            self.content.append(
                {
                    "toolUse": {
                        "toolUseId": self._tool["toolUseId"],
                        "name": self._tool["name"],
                        "input": tool_input,
                    }
                }
            )
        elif self._kind == "reasoning" and self._reasoning is not None:
            self.content.append({"reasoningContent": {"reasoningText": dict(self._reasoning)}})
        self._kind, self._text, self._tool, self._tool_input, self._reasoning = None, "", None, "", None

    def message(self) -> Message:
        self._close()
        return {"role": "assistant", "content": list(self.content)}
