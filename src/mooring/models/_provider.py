"""What every remote provider shares: format a request, stream it once, retry on throttling."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from typing import Any

from mooring.errors import ModelError, ModelNotAvailableError, ModelThrottledError
from mooring.models._retry import LoopLocal, RetryPolicy, retry_stream
from mooring.types import Message, StreamEvent, tool_uses

logger = logging.getLogger(__name__)


def refuses_tool_choice(exc: ModelError) -> bool:
    """Whether a provider error says the model does not take the request's tool choice
    (Bedrock: "This model doesn't support the toolConfig.toolChoice.tool field")."""
    if isinstance(exc, (ModelThrottledError, ModelNotAvailableError)):
        return False
    text = str(exc).lower()
    return "toolchoice" in text or "tool_choice" in text


#: Description of a tool declared only because the history calls it (see history_tool_specs).
HISTORY_TOOL_DESCRIPTION = "Called earlier in this conversation; not available now. Do not call it."


def history_tool_specs(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Placeholder specs for the tools the history calls, for a request that has none.

    Anthropic and Bedrock refuse toolUse/toolResult blocks in a request that declares no
    tools, which is what a plain turn after a structured-output turn (whose output tool is
    gone) or on an agent restored with fewer tools sends.
    """
    names: list[str] = []
    has_results = False
    for message in messages:
        for use in tool_uses(message):
            if use["name"] not in names:
                names.append(use["name"])
        has_results = has_results or any("toolResult" in block for block in message["content"])
    if not names and has_results:
        names = ["earlier_tool"]
    schema = {"type": "object", "properties": {}}
    return [{"name": n, "description": HISTORY_TOOL_DESCRIPTION, "inputSchema": {"json": schema}} for n in names]


class RetryingProvider:
    """Base of the provider models: :meth:`stream` is ``format_request`` + ``_stream_once``
    under the bounded backoff of ``retry_policy``. Subclasses set ``provider_name``."""

    provider_name = "the model provider"
    retry_policy: RetryPolicy

    def _configure(
        self,
        model_id: str,
        example: str,
        *,
        max_tokens: int | None,
        temperature: float | None,
        additional_request_fields: Mapping[str, Any] | None,
        max_retries: int,
        retry_base_delay: float,
        retry_max_delay: float,
    ) -> None:
        """The settings every provider takes, checked and stored the same way."""
        if not model_id:
            raise ModelNotAvailableError(f"{self.provider_name} needs a model id, for example {example!r}")
        self.model_id = model_id
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.additional_request_fields = dict(additional_request_fields or {})
        self.retry_policy = RetryPolicy(max_retries=max_retries, base_delay=retry_base_delay, max_delay=retry_max_delay)

    @staticmethod
    def _adopt_client(client: Any) -> tuple[Any, LoopLocal[Any]]:
        """A caller's SDK client, with its own retries off (our backoff replaces them);
        ``with_options`` shares the client's connection pool."""
        if hasattr(client, "with_options"):
            client = client.with_options(max_retries=0)
        return client, LoopLocal(lambda: client, client)

    def format_request(
        self,
        messages: Sequence[Message],
        tool_specs: Sequence[dict[str, Any]] | None = None,
        system_prompt: str | None = None,
        *,
        tool_choice: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        raise NotImplementedError

    def _stream_once(self, request: dict[str, Any]) -> AsyncGenerator[StreamEvent, None]:
        raise NotImplementedError

    async def stream(
        self,
        messages: Sequence[Message],
        tool_specs: Sequence[dict[str, Any]] | None = None,
        system_prompt: str | None = None,
        *,
        tool_choice: dict[str, Any] | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Stream Converse events for ``messages``; see :class:`mooring.models.Model`."""
        request = self.format_request(messages, tool_specs, system_prompt, tool_choice=tool_choice)
        started = False
        try:
            async for event in retry_stream(
                lambda: self._stream_once(request), self.retry_policy, provider=self.provider_name
            ):
                started = True
                yield event
            return
        except ModelError as exc:
            if started or not tool_choice or not refuses_tool_choice(exc):
                raise
            # Some models take tools but no forced choice (Bedrock: Llama, Mistral; some
            # compatible servers): ask again without it, and let the agent's retries do the rest.
            logger.warning(
                "provider=<%s>, model=<%s> | tool_choice refused, sent without it: %s",
                self.provider_name,
                self.model_id,
                exc,
            )
        request = self.format_request(messages, tool_specs, system_prompt)
        async for event in retry_stream(
            lambda: self._stream_once(request), self.retry_policy, provider=self.provider_name
        ):
            yield event
