"""What every remote provider shares: format a request, stream it once, retry on throttling."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

from mooring.models._retry import RetryPolicy, retry_stream
from mooring.types import Message, StreamEvent


class RetryingProvider:
    """Base of the provider models: :meth:`stream` is ``format_request`` + ``_stream_once``
    under the bounded backoff of ``retry_policy``. Subclasses set ``provider_name``."""

    provider_name = "the model provider"
    retry_policy: RetryPolicy

    def format_request(
        self,
        messages: Sequence[Message],
        tool_specs: Sequence[dict[str, Any]] | None = None,
        system_prompt: str | None = None,
    ) -> dict[str, Any]:
        raise NotImplementedError

    def _stream_once(self, request: dict[str, Any]) -> AsyncGenerator[StreamEvent, None]:
        raise NotImplementedError

    async def stream(
        self,
        messages: Sequence[Message],
        tool_specs: Sequence[dict[str, Any]] | None = None,
        system_prompt: str | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Stream Converse events for ``messages``; see :class:`mooring.models.Model`."""
        request = self.format_request(messages, tool_specs, system_prompt)
        async for event in retry_stream(
            lambda: self._stream_once(request), self.retry_policy, provider=self.provider_name
        ):
            yield event
