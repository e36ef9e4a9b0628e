"""``AnthropicModel``: Claude through the official ``anthropic`` SDK (streaming Messages API)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

from mooring.errors import (
    ContextWindowOverflowError,
    ModelError,
    ModelNotAvailableError,
    ModelThrottledError,
    missing_extra,
)
from mooring.models._provider import RetryingProvider, history_tool_specs
from mooring.models._retry import (
    IMAGE_MIME,
    TEXT_DOCUMENT_MIME,
    LoopLocal,
    as_base64,
    document_text,
)
from mooring.types import ContentBlock, Message, StreamEvent

logger = logging.getLogger(__name__)

NO_API_KEY_MESSAGE = (
    "no Anthropic API key found: set ANTHROPIC_API_KEY (or pass api_key=...); "
    "keys are at https://console.anthropic.com/settings/keys"
)

# Anthropic stop reasons -> Converse stop reasons.
_STOP_REASONS = {
    "end_turn": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "refusal": "content_filtered",
    "pause_turn": "end_turn",
    "model_context_window_exceeded": "max_tokens",
}

_OVERFLOW_PHRASES = ("prompt is too long", "input is too long", "context window", "maximum context length")
_THROTTLE_TYPES = frozenset({"rate_limit_error", "overloaded_error"})


class AnthropicModel(RetryingProvider):
    """A Claude model on the Anthropic API, streamed through the official SDK.

    Example::

        from mooring import Agent
        from mooring.models.anthropic import AnthropicModel

        agent = Agent(model=AnthropicModel("claude-haiku-4-5", max_tokens=2048))
        # or Agent(model="anthropic:claude-haiku-4-5")

    The key is ``api_key``, else ``ANTHROPIC_API_KEY`` (or whatever else the SDK resolves:
    ``ANTHROPIC_AUTH_TOKEN``, a profile). ``additional_request_fields`` are merged into the
    request body, for example ``{"thinking": {"type": "enabled", "budget_tokens": 2048}}``.
    Rate limits (429) and overload (529) are retried ``max_retries`` times with exponential
    backoff and jitter, then raised as :class:`~mooring.errors.ModelThrottledError`; the SDK's
    own retries are turned off. A ``client`` you pass (its retries turned off) serves every event loop.
    """

    provider_name = "Anthropic"

    def __init__(
        self,
        model_id: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        max_tokens: int = 1024,
        temperature: float | None = None,
        client: Any = None,
        max_retries: int = 4,
        retry_base_delay: float = 1.0,
        retry_max_delay: float = 30.0,
        additional_request_fields: Mapping[str, Any] | None = None,
    ) -> None:
        try:
            import anthropic
        except ImportError as exc:
            raise missing_extra("anthropic", "the anthropic SDK") from exc
        self._configure(
            model_id,
            "anthropic:claude-haiku-4-5",
            max_tokens=max_tokens,
            temperature=temperature,
            additional_request_fields=additional_request_fields,
            max_retries=max_retries,
            retry_base_delay=retry_base_delay,
            retry_max_delay=retry_max_delay,
        )
        self._sdk: Any = anthropic
        if client is not None:
            client, self._clients = self._adopt_client(client)
            self.base_url = str(client.base_url)
            return

        def build() -> Any:
            return anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url, max_retries=0)

        try:
            first = build()
        except anthropic.AnthropicError as exc:  # a broken profile or credentials file
            raise ModelNotAvailableError(f"could not load Anthropic credentials: {exc}") from exc
        if first.api_key is None and first.auth_token is None and first.credentials is None:
            raise ModelNotAvailableError(NO_API_KEY_MESSAGE)
        self.base_url = str(first.base_url)
        self._clients = LoopLocal(build, first, close=lambda c: c.close())

    def __repr__(self) -> str:
        return f"AnthropicModel({self.model_id!r}, base_url={self.base_url!r})"

    # -- the Model protocol ---------------------------------------------------------------------

    def format_request(
        self,
        messages: Sequence[Message],
        tool_specs: Sequence[dict[str, Any]] | None = None,
        system_prompt: str | None = None,
        *,
        tool_choice: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The keyword arguments for ``client.messages.create`` (without ``stream``)."""
        request: dict[str, Any] = {
            "model": self.model_id,
            "max_tokens": self.max_tokens,
            "messages": format_messages(messages),
        }
        if system_prompt:
            request["system"] = system_prompt
        tool_specs = tool_specs or history_tool_specs(messages)
        if tool_specs:
            request["tools"] = [
                {
                    "name": spec["name"],
                    "description": spec.get("description", ""),
                    "input_schema": spec.get("inputSchema", {}).get("json", {"type": "object"}),
                }
                for spec in tool_specs
            ]
            if tool_choice and thinking_enabled(self.additional_request_fields):
                # The API refuses a forced tool choice with extended thinking on; the agent's
                # instruction to call the tool (and its retries) still apply.
                logger.debug("tool_choice=<%s> | not sent: extended thinking is enabled", tool_choice)
            elif tool_choice:
                request["tool_choice"] = format_tool_choice(tool_choice)
        # Through extra_body rather than keyword arguments: the SDK's signature changes across
        # versions (recent ones dropped ``temperature``), the request body does not.
        extra: dict[str, Any] = {}
        if self.temperature is not None:
            extra["temperature"] = self.temperature
        extra.update(self.additional_request_fields)
        if extra:
            request["extra_body"] = extra
        return request

    # -- one attempt ----------------------------------------------------------------------------

    async def _stream_once(self, request: dict[str, Any]) -> AsyncGenerator[StreamEvent, None]:
        client = self._clients.get()
        converter = StreamConverter()
        try:
            stream = await client.messages.create(**request, stream=True)
        except Exception as exc:
            mapped = self._translate(exc)
            if mapped is None:
                raise
            raise mapped from exc
        try:
            async for raw in stream:
                for event in converter.convert(raw.to_dict()):
                    yield event
        except Exception as exc:
            mapped = self._translate(exc)
            if mapped is None:
                raise
            raise mapped from exc
        finally:
            await stream.close()

    def _translate(self, exc: Exception) -> ModelError | None:
        """The mooring error for an SDK failure (``None`` for anything else)."""
        sdk = self._sdk
        if isinstance(exc, sdk.APIConnectionError):
            return ModelError(
                f"could not reach the Anthropic API at {self.base_url} ({exc}); check the network and base_url"
            )
        if isinstance(exc, sdk.APIStatusError):
            status = int(exc.status_code)
            body = exc.body if isinstance(exc.body, Mapping) else {}
            error = body.get("error", body)
            error_type = error.get("type") if isinstance(error, Mapping) else None
            message = str(error.get("message") or exc) if isinstance(error, Mapping) else str(exc)
            lowered = message.lower()
            if status in (429, 529) or error_type in _THROTTLE_TYPES:
                return ModelThrottledError(f"Anthropic throttled the request ({status} {error_type}): {message}")
            if status == 413 or (status == 400 and any(p in lowered for p in _OVERFLOW_PHRASES)):
                return ContextWindowOverflowError(f"the conversation is too long for {self.model_id}: {message}")
            if status == 401:
                return ModelNotAvailableError(f"Anthropic rejected the API key: {message}; check ANTHROPIC_API_KEY")
            if status == 403:
                return ModelNotAvailableError(f"Anthropic denied access to {self.model_id}: {message}")
            if status == 404:
                return ModelNotAvailableError(f"Anthropic does not know the model {self.model_id!r}: {message}")
            return ModelError(f"Anthropic API error {status} ({error_type}) for {self.model_id}: {message}")
        if isinstance(exc, sdk.AnthropicError):
            return ModelError(f"Anthropic request for {self.model_id} failed: {exc}")
        return None


def thinking_enabled(fields: Mapping[str, Any]) -> bool:
    """Whether request fields turn Claude's extended thinking on (which refuses a forced tool choice)."""
    thinking = fields.get("thinking")
    return isinstance(thinking, Mapping) and thinking.get("type") not in (None, "disabled")


def format_tool_choice(choice: Mapping[str, Any]) -> dict[str, Any]:
    """Anthropic's ``tool_choice`` for a Converse-style one."""
    if "tool" in choice:
        return {"type": "tool", "name": choice["tool"]["name"]}
    if "any" in choice:
        return {"type": "any"}
    return {"type": "auto"}


# -- mooring messages -> Anthropic ------------------------------------------------------------


def format_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Anthropic ``messages`` for mooring (Converse-style) messages."""
    formatted: list[dict[str, Any]] = []
    for message in messages:
        content: list[dict[str, Any]] = []
        for block in message["content"]:
            if "cachePoint" in block:
                # A Converse cache point marks the end of the block before it.
                if content:
                    content[-1]["cache_control"] = {"type": "ephemeral"}
                continue
            converted = _format_block(block)
            if converted is not None:
                content.append(converted)
        if content:
            formatted.append({"role": message["role"], "content": content})
    return formatted


def _format_block(block: ContentBlock) -> dict[str, Any] | None:
    if "text" in block:
        return {"type": "text", "text": block["text"]}
    if "image" in block:
        return _format_image(block["image"])
    if "document" in block:
        return _format_document(block["document"])
    if "toolUse" in block:
        use = block["toolUse"]
        return {"type": "tool_use", "id": use["toolUseId"], "name": use["name"], "input": use.get("input") or {}}
    if "toolResult" in block:
        result = block["toolResult"]
        parts: list[dict[str, Any]] = []
        for item in result.get("content", []):
            if "text" in item:
                parts.append({"type": "text", "text": item["text"]})
            elif "json" in item:
                parts.append({"type": "text", "text": json.dumps(item["json"])})
            elif "image" in item:
                parts.append(_format_image(item["image"]))
            elif "document" in item:
                parts.append(_format_document(item["document"]))
        return {
            "type": "tool_result",
            "tool_use_id": result["toolUseId"],
            "content": parts,
            "is_error": result.get("status") == "error",
        }
    if "reasoningContent" in block:
        reasoning = block["reasoningContent"]
        text = reasoning.get("reasoningText", {})
        if text.get("signature"):
            return {"type": "thinking", "thinking": text.get("text", ""), "signature": text["signature"]}
        if "redactedContent" in reasoning:
            return {"type": "redacted_thinking", "data": _redacted_data(reasoning["redactedContent"])}
        # Unsigned reasoning (from another provider) would be rejected by the API; the answer that
        # followed it is kept, which is what the next turn needs.
        return None
    if "guardContent" in block:
        text_block = block["guardContent"].get("text", {})
        return {"type": "text", "text": str(text_block.get("text", ""))}
    logger.debug("block=<%s> | content block Anthropic has no counterpart for, not sent", sorted(block))
    return None


def _redacted_data(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("ascii")
    return str(value)


def _format_image(image: Mapping[str, Any]) -> dict[str, Any]:
    fmt = str(image.get("format", "png")).lower()
    return {
        "type": "image",
        "source": {
            "type": "base64",
            "media_type": IMAGE_MIME.get(fmt, f"image/{fmt}"),
            "data": as_base64(image["source"]["bytes"]),
        },
    }


def _format_document(document: Mapping[str, Any]) -> dict[str, Any]:
    fmt = str(document.get("format", "")).lower()
    text = document_text(dict(document))
    if text is not None:
        source: dict[str, Any] = {"type": "text", "media_type": "text/plain", "data": text}
    elif fmt == "pdf":
        source = {"type": "base64", "media_type": "application/pdf", "data": as_base64(document["source"]["bytes"])}
    else:
        supported = ", ".join(["pdf", *TEXT_DOCUMENT_MIME])
        raise ModelError(f"Anthropic cannot read {fmt or 'unknown'} documents (supported: {supported})")
    block: dict[str, Any] = {"type": "document", "source": source}
    if document.get("name"):
        block["title"] = str(document["name"])
    return block


# -- Anthropic stream events -> Converse events -------------------------------------------------


class StreamConverter:
    """Turns Anthropic stream events (as dicts) into Converse-style events, one at a time.

    ``messageStart`` is held back until the first content event, so that an ``overloaded_error``
    arriving straight after ``message_start`` can still be retried (nothing was shown yet).
    """

    def __init__(self) -> None:
        self.stop_reason = "end_turn"
        self.usage: dict[str, int] = {"inputTokens": 0, "outputTokens": 0}
        self._start_pending = False

    def convert(self, event: Mapping[str, Any]) -> list[StreamEvent]:
        kind = event.get("type")
        out: list[StreamEvent] = []
        if kind == "message_start":
            self._start_pending = True
            self._add_usage(event.get("message", {}).get("usage") or {})
            return out
        if self._start_pending:
            out.append({"messageStart": {"role": "assistant"}})
            self._start_pending = False
        index = int(event.get("index", 0))
        if kind == "content_block_start":
            block = event.get("content_block", {})
            start: dict[str, Any] = {}
            if block.get("type") in ("tool_use", "server_tool_use"):
                start = {"toolUse": {"toolUseId": block["id"], "name": block["name"]}}
            out.append({"contentBlockStart": {"start": start, "contentBlockIndex": index}})
            if block.get("type") == "text" and block.get("text"):
                out.append({"contentBlockDelta": {"delta": {"text": block["text"]}, "contentBlockIndex": index}})
        elif kind == "content_block_delta":
            delta = event.get("delta", {})
            converted = _convert_delta(delta)
            if converted is not None:
                out.append({"contentBlockDelta": {"delta": converted, "contentBlockIndex": index}})
        elif kind == "content_block_stop":
            out.append({"contentBlockStop": {"contentBlockIndex": index}})
        elif kind == "message_delta":
            reason = event.get("delta", {}).get("stop_reason")
            if reason:
                self.stop_reason = _STOP_REASONS.get(reason, "end_turn")
            self._add_usage(event.get("usage") or {})
        elif kind == "message_stop":
            usage = dict(self.usage)
            usage["totalTokens"] = usage["inputTokens"] + usage["outputTokens"]
            out.append({"messageStop": {"stopReason": self.stop_reason}})
            out.append({"metadata": {"usage": usage}})
        return out

    def _add_usage(self, usage: Mapping[str, Any]) -> None:
        # message_delta carries cumulative counts, so later values replace earlier ones.
        if usage.get("input_tokens") is not None:
            self.usage["inputTokens"] = int(usage["input_tokens"])
        if usage.get("output_tokens") is not None:
            self.usage["outputTokens"] = int(usage["output_tokens"])
        if usage.get("cache_read_input_tokens"):
            self.usage["cacheReadInputTokens"] = int(usage["cache_read_input_tokens"])
        if usage.get("cache_creation_input_tokens"):
            self.usage["cacheWriteInputTokens"] = int(usage["cache_creation_input_tokens"])


def _convert_delta(delta: Mapping[str, Any]) -> dict[str, Any] | None:
    kind = delta.get("type")
    if kind == "text_delta":
        return {"text": delta.get("text", "")}
    if kind == "input_json_delta":
        return {"toolUse": {"input": delta.get("partial_json", "")}}
    if kind == "thinking_delta":
        return {"reasoningContent": {"text": delta.get("thinking", "")}}
    if kind == "signature_delta":
        return {"reasoningContent": {"signature": delta.get("signature", "")}}
    return None  # citations and future delta kinds carry nothing the conversation keeps
