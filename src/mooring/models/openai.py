"""``OpenAIModel``: OpenAI and OpenAI-compatible servers (Ollama, vLLM, LM Studio) through the
official ``openai`` SDK's streaming chat completions; ``OllamaModel`` presets it for Ollama."""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from mooring.errors import (
    ContextWindowOverflowError,
    ModelError,
    ModelNotAvailableError,
    ModelThrottledError,
    missing_extra,
)
from mooring.models._provider import RetryingProvider
from mooring.models._retry import (
    IMAGE_MIME,
    LoopLocal,
    as_base64,
    document_text,
)
from mooring.types import ContentBlock, Message, StreamEvent

logger = logging.getLogger(__name__)

NO_API_KEY_MESSAGE = (
    "no OpenAI API key found: set OPENAI_API_KEY (or pass api_key=...); for a local "
    "OpenAI-compatible server (vLLM, LM Studio) pass base_url=..., for Ollama use 'ollama:<model>'"
)

#: Where Ollama listens unless ``OLLAMA_HOST`` says otherwise.
OLLAMA_DEFAULT_HOST = "http://localhost:11434"

# OpenAI finish reasons -> Converse stop reasons.
_STOP_REASONS = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
    "content_filter": "content_filtered",
}

_OVERFLOW_PHRASES = (
    "maximum context length",
    "context length",
    "context window",
    "too many tokens",
    "prompt is too long",
    "input is too long",
)


class OpenAIModel(RetryingProvider):
    """A chat model behind the OpenAI chat completions API, streamed through the official SDK.

    Example::

        from mooring import Agent
        from mooring.models.openai import OpenAIModel

        agent = Agent(model=OpenAIModel("gpt-4o-mini"))                  # or "openai:gpt-4o-mini"
        local = OpenAIModel("Qwen/Qwen3-8B", base_url="http://127.0.0.1:8000/v1")  # vLLM

    The key is ``api_key``, else ``OPENAI_API_KEY``; with a custom ``base_url`` (or
    ``OPENAI_BASE_URL``) a key is optional, since local servers ignore it.
    ``additional_request_fields`` are merged into the request body. Rate limits (429) and
    overload (503) are retried ``max_retries`` times with exponential backoff and jitter, then
    raised as :class:`~mooring.errors.ModelThrottledError`; the SDK's own retries are off.
    A ``client`` you pass (its retries turned off) serves every event loop.
    """

    #: Named in error messages.
    provider_name = server_name = "the OpenAI API"

    def __init__(
        self,
        model_id: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        client: Any = None,
        max_retries: int = 4,
        retry_base_delay: float = 1.0,
        retry_max_delay: float = 30.0,
        additional_request_fields: Mapping[str, Any] | None = None,
    ) -> None:
        try:
            import openai
        except ImportError as exc:
            raise missing_extra("openai", "the openai SDK") from exc
        self._configure(
            model_id,
            "openai:gpt-4o-mini",
            max_tokens=max_tokens,
            temperature=temperature,
            additional_request_fields=additional_request_fields,
            max_retries=max_retries,
            retry_base_delay=retry_base_delay,
            retry_max_delay=retry_max_delay,
        )
        self._sdk: Any = openai
        if client is not None:
            client, self._clients = self._adopt_client(client)
            self.base_url = str(client.base_url)
            self._custom_server = "api.openai.com" not in self.base_url
            return
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self._custom_server = base_url is not None
        api_key = api_key or os.environ.get("OPENAI_API_KEY") or None
        if api_key is None:
            if base_url is None:
                raise ModelNotAvailableError(NO_API_KEY_MESSAGE)
            api_key = "unused"  # the SDK insists on a key; local servers ignore it

        def build() -> Any:
            return openai.AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0)

        first = build()
        self.base_url = str(first.base_url)
        self._clients = LoopLocal(build, first, close=lambda c: c.close())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_id!r}, base_url={self.base_url!r})"

    # -- the Model protocol ---------------------------------------------------------------------

    def format_request(
        self,
        messages: Sequence[Message],
        tool_specs: Sequence[dict[str, Any]] | None = None,
        system_prompt: str | None = None,
        *,
        tool_choice: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The keyword arguments for ``client.chat.completions.create``."""
        request: dict[str, Any] = {
            "model": self.model_id,
            "messages": format_messages(messages, system_prompt),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tool_specs:
            request["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": spec["name"],
                        "description": spec.get("description", ""),
                        "parameters": spec.get("inputSchema", {}).get("json", {"type": "object", "properties": {}}),
                    },
                }
                for spec in tool_specs
            ]
            if tool_choice:
                request["tool_choice"] = format_tool_choice(tool_choice)
        if self.max_tokens is not None:
            # OpenAI's newer models only accept max_completion_tokens; compatible servers
            # (Ollama, vLLM, LM Studio) only know max_tokens.
            request["max_tokens" if self._custom_server else "max_completion_tokens"] = self.max_tokens
        if self.temperature is not None:
            request["temperature"] = self.temperature
        if self.additional_request_fields:
            request["extra_body"] = self.additional_request_fields
        return request

    # -- one attempt ----------------------------------------------------------------------------

    async def _stream_once(self, request: dict[str, Any]) -> AsyncGenerator[StreamEvent, None]:
        client = self._clients.get()
        converter = StreamConverter()
        try:
            stream = await client.chat.completions.create(**request)
        except Exception as exc:
            mapped = self._translate(exc)
            if mapped is None:
                raise
            raise mapped from exc
        try:
            async for chunk in stream:
                for event in converter.convert(chunk.to_dict()):
                    yield event
        except Exception as exc:
            mapped = self._translate(exc)
            if mapped is None:
                raise
            raise mapped from exc
        finally:
            await stream.close()
        for event in converter.finish():
            yield event

    # Hints appended to connection and not-found errors; OllamaModel names its own commands.
    def _unreachable_hint(self) -> str:
        return "is the server running?" if self._custom_server else "check the network and base_url"

    def _not_found_hint(self) -> str:
        return "check the model name"

    def _translate(self, exc: Exception) -> ModelError | None:
        """The mooring error for an SDK failure (``None`` for anything else)."""
        sdk = self._sdk
        if isinstance(exc, sdk.APIConnectionError):
            return ModelError(
                f"could not reach {self.server_name} at {self.base_url} ({exc}); {self._unreachable_hint()}"
            )
        if isinstance(exc, sdk.APIError):
            status = int(getattr(exc, "status_code", 0) or 0)
            code = str(getattr(exc, "code", None) or "")
            message = str(getattr(exc, "message", None) or exc)
            lowered = message.lower()
            if code == "context_length_exceeded" or (
                status in (0, 400, 413) and any(p in lowered for p in _OVERFLOW_PHRASES)
            ):
                return ContextWindowOverflowError(f"the conversation is too long for {self.model_id}: {message}")
            if status == 429 and code == "insufficient_quota":
                return ModelError(f"{self.server_name} quota is used up: {message}; check the account's billing")
            if status in (429, 503) or code == "rate_limit_exceeded":
                return ModelThrottledError(f"{self.server_name} throttled the request ({status}): {message}")
            if status == 401:
                return ModelNotAvailableError(
                    f"{self.server_name} rejected the API key: {message}; check OPENAI_API_KEY"
                )
            if status == 404:
                return ModelNotAvailableError(
                    f"{self.server_name} at {self.base_url} does not know the model {self.model_id!r}: {message} "
                    f"({self._not_found_hint()})"
                )
            where = f"HTTP {status}" if status else "mid-stream"
            return ModelError(f"{self.server_name} error ({where}) for {self.model_id}: {message}")
        if isinstance(exc, sdk.OpenAIError):
            return ModelError(f"{self.server_name} request for {self.model_id} failed: {exc}")
        return None


class OllamaModel(OpenAIModel):
    """A model served by a local Ollama, through its OpenAI-compatible endpoint.

    ``ollama:llama3.2`` resolves to ``OllamaModel("llama3.2")``: ``http://localhost:11434/v1``
    unless ``host`` or ``OLLAMA_HOST`` says otherwise (``OLLAMA_HOST`` may be ``host``,
    ``host:port`` or a URL, as for the ``ollama`` CLI).
    """

    provider_name = server_name = "Ollama"

    def __init__(self, model_id: str, *, host: str | None = None, **options: Any) -> None:
        options.setdefault("base_url", ollama_base_url(host))
        options.setdefault("api_key", "ollama")
        super().__init__(model_id, **options)

    def _unreachable_hint(self) -> str:
        return "is Ollama running? start it with `ollama serve`"

    def _not_found_hint(self) -> str:
        return f"pull it with `ollama pull {self.model_id}`"


def ollama_base_url(host: str | None = None) -> str:
    """The OpenAI-compatible base URL of the Ollama at ``host`` (default: ``OLLAMA_HOST``)."""
    host = (host or os.environ.get("OLLAMA_HOST") or OLLAMA_DEFAULT_HOST).strip().rstrip("/")
    if "://" not in host:
        host = "http://" + host
    parts = urlsplit(host)
    hostname = parts.hostname or "localhost"
    if hostname in ("0.0.0.0", "::"):
        hostname = "localhost"  # a listen-on-everything address, not one to connect to
    if ":" in hostname:
        hostname = f"[{hostname}]"
    # Like the ollama CLI: a plain host means Ollama's port; an https URL its own default.
    port = parts.port or (11434 if parts.scheme == "http" else None)
    netloc = f"{hostname}:{port}" if port else hostname
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}/v1"


def format_tool_choice(choice: Mapping[str, Any]) -> str | dict[str, Any]:
    """The chat-completions ``tool_choice`` for a Converse-style one."""
    if "tool" in choice:
        return {"type": "function", "function": {"name": choice["tool"]["name"]}}
    if "any" in choice:
        return "required"
    return "auto"


# -- mooring messages -> chat completions messages -------------------------------------------


def format_messages(messages: Sequence[Message], system_prompt: str | None = None) -> list[dict[str, Any]]:
    """Chat-completions ``messages`` for mooring (Converse-style) messages."""
    formatted: list[dict[str, Any]] = []
    if system_prompt:
        formatted.append({"role": "system", "content": system_prompt})
    for message in messages:
        if message["role"] == "assistant":
            formatted.extend(_format_assistant(message["content"]))
        else:
            formatted.extend(_format_user(message["content"]))
    return formatted


def _format_assistant(blocks: Sequence[ContentBlock]) -> list[dict[str, Any]]:
    texts = [block["text"] for block in blocks if "text" in block]
    calls = [
        {
            "id": block["toolUse"]["toolUseId"],
            "type": "function",
            "function": {
                "name": block["toolUse"]["name"],
                "arguments": json.dumps(block["toolUse"].get("input") or {}),
            },
        }
        for block in blocks
        if "toolUse" in block
    ]
    if not texts and not calls:
        return []
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return [message]


def _format_user(blocks: Sequence[ContentBlock]) -> list[dict[str, Any]]:
    # Tool results become "tool" messages, which must directly follow the assistant's tool
    # calls; everything else (and images a tool returned, which tool messages cannot carry)
    # goes into one user message after them.
    tool_messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in blocks:
        if "toolResult" in block:
            result = block["toolResult"]
            texts: list[str] = []
            for item in result.get("content", []):
                if "text" in item:
                    texts.append(item["text"])
                elif "json" in item:
                    texts.append(json.dumps(item["json"]))
                elif "image" in item:
                    texts.append("[image attached below]")
                    parts.append(_format_image(item["image"]))
                elif "document" in item:
                    texts.append(_document_as_text(item["document"]))
            tool_messages.append({"role": "tool", "tool_call_id": result["toolUseId"], "content": "\n".join(texts)})
        elif "text" in block:
            parts.append({"type": "text", "text": block["text"]})
        elif "image" in block:
            parts.append(_format_image(block["image"]))
        elif "document" in block:
            parts.append(_format_document(block["document"]))
        elif "guardContent" in block:
            parts.append({"type": "text", "text": str(block["guardContent"].get("text", {}).get("text", ""))})
    if not parts:
        return tool_messages
    if all(part["type"] == "text" for part in parts):
        # Plain strings are the one form every compatible server accepts.
        return [*tool_messages, {"role": "user", "content": "\n".join(part["text"] for part in parts)}]
    return [*tool_messages, {"role": "user", "content": parts}]


def _format_image(image: Mapping[str, Any]) -> dict[str, Any]:
    fmt = str(image.get("format", "png")).lower()
    mime = IMAGE_MIME.get(fmt, f"image/{fmt}")
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{as_base64(image['source']['bytes'])}"}}


def _format_document(document: Mapping[str, Any]) -> dict[str, Any]:
    fmt = str(document.get("format", "")).lower()
    if fmt == "pdf" and "bytes" in document.get("source", {}):
        name = str(document.get("name") or "document")
        return {
            "type": "file",
            "file": {
                "filename": name if name.endswith(".pdf") else f"{name}.pdf",
                "file_data": f"data:application/pdf;base64,{as_base64(document['source']['bytes'])}",
            },
        }
    return {"type": "text", "text": _document_as_text(document)}


def _document_as_text(document: Mapping[str, Any]) -> str:
    text = document_text(dict(document))
    if text is None:
        fmt = document.get("format") or "unknown"
        raise ModelError(f"chat completions cannot read {fmt} documents; convert it to text or pdf first")
    name = document.get("name")
    return f"[document: {name}]\n{text}" if name else text


# -- chat completion chunks -> Converse events ------------------------------------------------


class StreamConverter:
    """Turns chat-completion chunks (as dicts) into Converse-style events.

    Text and reasoning stream as they come. Tool calls arrive as argument fragments keyed by
    ``index`` (parallel calls may interleave), so they are accumulated and emitted whole once
    the stream ends, each as a toolUse block.
    """

    def __init__(self) -> None:
        self.finish_reason: str | None = None
        self.usage: dict[str, int] = {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0}
        self._started = False
        self._open: str | None = None  # "text" or "reasoning"
        self._index = -1
        self._calls: dict[int, dict[str, str]] = {}

    def convert(self, chunk: Mapping[str, Any]) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        if not self._started:
            self._started = True
            out.append({"messageStart": {"role": "assistant"}})
        usage = chunk.get("usage")
        if usage:
            inputs, outputs = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            total = int(usage.get("total_tokens") or inputs + outputs)
            self.usage = {"inputTokens": inputs, "outputTokens": outputs, "totalTokens": total}
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue  # n > 1 is not something an agent asks for
            delta = choice.get("delta") or {}
            # vLLM and DeepSeek call it reasoning_content, Ollama and LM Studio reasoning.
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if reasoning:
                out.extend(self._delta("reasoning", {"reasoningContent": {"text": reasoning}}))
            if delta.get("content"):
                out.extend(self._delta("text", {"text": delta["content"]}))
            for position, call in enumerate(delta.get("tool_calls") or []):
                slot = self._calls.setdefault(int(call.get("index", position)), {"id": "", "name": "", "arguments": ""})
                function = call.get("function") or {}
                slot["id"] = call.get("id") or slot["id"]
                slot["name"] += function.get("name") or ""
                slot["arguments"] += function.get("arguments") or ""
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return out

    def finish(self) -> list[StreamEvent]:
        """The events that close the message once the stream has ended."""
        out: list[StreamEvent] = []
        if not self._started:
            out.append({"messageStart": {"role": "assistant"}})
        out.extend(self._close())
        for _, call in sorted(self._calls.items()):
            self._index += 1
            tool_use_id = call["id"] or f"call_{uuid.uuid4().hex[:24]}"
            out.append(
                {
                    "contentBlockStart": {
                        "start": {"toolUse": {"toolUseId": tool_use_id, "name": call["name"]}},
                        "contentBlockIndex": self._index,
                    }
                }
            )
            arguments = call["arguments"] if call["arguments"].strip() else "{}"
            out.append(
                {"contentBlockDelta": {"delta": {"toolUse": {"input": arguments}}, "contentBlockIndex": self._index}}
            )
            out.append({"contentBlockStop": {"contentBlockIndex": self._index}})
        stop_reason = _STOP_REASONS.get(self.finish_reason or "stop", "end_turn")
        if self._calls and stop_reason == "end_turn":
            stop_reason = "tool_use"  # some compatible servers say "stop" after tool calls
        out.append({"messageStop": {"stopReason": stop_reason}})
        out.append({"metadata": {"usage": dict(self.usage)}})
        return out

    def _delta(self, kind: str, delta: dict[str, Any]) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        if self._open != kind:
            out.extend(self._close())
            self._index += 1
            self._open = kind
            out.append({"contentBlockStart": {"start": {}, "contentBlockIndex": self._index}})
        out.append({"contentBlockDelta": {"delta": delta, "contentBlockIndex": self._index}})
        return out

    def _close(self) -> list[StreamEvent]:
        if self._open is None:
            return []
        self._open = None
        return [{"contentBlockStop": {"contentBlockIndex": self._index}}]
