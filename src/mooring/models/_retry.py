"""Plumbing shared by the model providers: bounded retries, per-loop clients, content bytes.

Each provider disables its SDK's own retries and lets :func:`retry_stream` decide, so that the
behaviour is the same everywhere and tests can make it instant (``base_delay=0``).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import threading
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from mooring.errors import ModelThrottledError
from mooring.types import StreamEvent

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how patiently a throttled request is retried.

    ``max_retries`` counts retries after the first attempt. The delay before retry ``n``
    (0-based) is drawn from ``[cap / 2, cap]`` with ``cap = min(max_delay, base_delay * 2**n)``
    ("equal jitter"), so concurrent clients spread out but never retry immediately.
    """

    max_retries: int = 4
    base_delay: float = 1.0
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries!r}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("retry delays must be >= 0")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        cap = min(self.max_delay, self.base_delay * (2.0 ** min(attempt, 60)))  # 2.0**1100 overflows
        return cap / 2 + random.uniform(0, cap / 2)


async def retry_stream(
    open_stream: Callable[[], AsyncGenerator[StreamEvent, None]],
    policy: RetryPolicy,
    *,
    provider: str,
) -> AsyncIterator[StreamEvent]:
    """Yield the events of ``open_stream()``, starting over while it raises ModelThrottledError.

    A retry is only possible before the first event reached the caller: once an event is out,
    replaying the stream would show the caller the same text twice, so a later throttle is
    raised as it is.
    """
    attempt = 0
    while True:
        started = False
        try:
            async with aclosing(open_stream()) as events:
                async for event in events:
                    started = True
                    yield event
            return
        except ModelThrottledError as exc:
            if started:
                raise
            if attempt >= policy.max_retries:
                attempts = f"{attempt + 1} attempts" if attempt else "1 attempt"
                raise ModelThrottledError(
                    f"{provider} is still throttling after {attempts}; "
                    f"wait and try again, or ask for a higher quota ({exc})"
                ) from exc
            delay = policy.delay(attempt)
            attempt += 1
            logger.warning(
                "provider=<%s>, attempt=<%d>, delay=<%.2f> | throttled, retrying: %s",
                provider,
                attempt,
                delay,
                exc,
            )
            await asyncio.sleep(delay)


class LoopLocal(Generic[T]):
    """One SDK client per running event loop.

    An async HTTP client's connection pool belongs to the loop that opened it, and
    ``Agent.__call__`` runs every invocation in a fresh loop; a client shared across loops would
    hand the new loop kept-alive connections of a closed one. ``first`` (built eagerly, so that
    configuration errors surface at construction) serves the first loop that asks.

    With ``close``, each client is closed by its loop's shutdown (``asyncio.run`` closes the
    loop's open async generators before it closes the loop), since its kept-alive connections
    must not outlive the loop that owns their sockets. Without it (a caller's client), closing
    stays the caller's business.
    """

    def __init__(
        self,
        factory: Callable[[], T],
        first: T | None = None,
        *,
        close: Callable[[T], Awaitable[object]] | None = None,
    ) -> None:
        self._factory = factory
        self._first = first
        self._close = close
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()
        # A loop holds its async generators weakly, so the closers are kept here until they ran.
        self._closers: dict[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = {}
        self._lock = threading.Lock()

    def get(self) -> T:
        """The client for the running event loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.get(loop)
            if client is None:
                if self._first is not None:
                    client, self._first = self._first, None
                else:
                    client = self._factory()
                self._clients[loop] = client
                if self._close is not None:
                    self._forget_closed_loops()
                    self._closers[loop] = self._start_closer(loop, self._close, client)
            return client

    def _start_closer(
        self, loop: asyncio.AbstractEventLoop, close: Callable[[T], Awaitable[object]], client: T
    ) -> AsyncGenerator[None, None]:
        """An async generator, started on ``loop``, whose ``finally`` closes ``client``.

        Starting it registers it with the loop (through the ``firstiter`` hook the running loop
        installs), and ``loop.shutdown_asyncgens()`` closes it while the loop still runs.
        """

        async def closer() -> AsyncGenerator[None, None]:
            try:
                yield
            finally:
                try:
                    await close(client)
                finally:
                    with self._lock:
                        self._closers.pop(loop, None)
                        self._clients.pop(loop, None)

        generator = closer()
        # The body does not suspend before its ``yield``, so the first step finishes at once
        # (StopIteration) without awaiting, and get() stays synchronous.
        try:
            generator.asend(None).send(None)
        except StopIteration:
            pass
        return generator

    def _forget_closed_loops(self) -> None:
        """Drop the closers of loops closed without ``shutdown_asyncgens`` (not ``asyncio.run``):
        their clients can no longer be closed cleanly, and the closers would keep the loops alive."""
        for loop in [loop for loop in self._closers if loop.is_closed()]:
            del self._closers[loop]


# -- content helpers shared by the providers that do not speak Converse natively ----------------


def as_bytes(value: Any) -> bytes:
    """Raw bytes from a content-block payload: bytes, the stored ``__bytes_encoded__`` form, or base64 text."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, dict) and value.get("__bytes_encoded__") is True:
        return base64.b64decode(value["data"])
    if isinstance(value, str):
        return base64.b64decode(value)
    raise TypeError(f"expected bytes in a content block, got {type(value).__name__}")


def as_base64(value: Any) -> str:
    """The base64 text of a content-block payload (see :func:`as_bytes`)."""
    if isinstance(value, str):
        return value
    return base64.b64encode(as_bytes(value)).decode("ascii")


# Converse image/document formats -> MIME types, for the providers that want MIME types.
IMAGE_MIME = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "jpg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
}
TEXT_DOCUMENT_MIME = {"txt": "text/plain", "md": "text/markdown", "csv": "text/csv", "html": "text/html"}


def document_text(document: dict[str, Any]) -> str | None:
    """The text of a Converse document block, when it is text (a ``text`` source or a text format)."""
    source = document.get("source", {})
    if isinstance(source.get("text"), str):
        return str(source["text"])
    if document.get("format") in TEXT_DOCUMENT_MIME and "bytes" in source:
        return as_bytes(source["bytes"]).decode("utf-8", errors="replace")
    return None
