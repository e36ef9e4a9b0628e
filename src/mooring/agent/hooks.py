"""Typed lifecycle events, the hook registry, and the HookProvider protocol."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from mooring.agent.agent import Agent
    from mooring.agent.result import AgentResult
    from mooring.types import Message, ToolResult, ToolUse


@dataclass(kw_only=True)
class HookEvent:
    """Base of every lifecycle event; ``agent`` is the Agent that emitted it."""

    agent: Agent

    #: "After" events run their callbacks in reverse registration order, so that a provider
    #: registered first (for example a session manager) sees the final picture last.
    reverse_callbacks = False


@dataclass(kw_only=True)
class AgentInitialized(HookEvent):
    """The Agent finished its constructor. Session managers restore here."""


@dataclass(kw_only=True)
class BeforeInvocation(HookEvent):
    """An invocation starts, before the prompt is added to the conversation."""


@dataclass(kw_only=True)
class AfterInvocation(HookEvent):
    """An invocation ended, successfully (``result`` set) or not (``error`` set)."""

    result: AgentResult | None = None
    error: BaseException | None = None
    reverse_callbacks = True


@dataclass(kw_only=True)
class MessageAdded(HookEvent):
    """A message entered ``agent.messages`` (always through the one chokepoint)."""

    message: Message


@dataclass(kw_only=True)
class BeforeModelCall(HookEvent):
    """The model is about to be called with the current conversation."""


@dataclass(kw_only=True)
class AfterModelCall(HookEvent):
    """A model call ended; ``stop_reason`` on success, ``error`` on failure."""

    stop_reason: str | None = None
    error: BaseException | None = None
    reverse_callbacks = True


@dataclass(kw_only=True)
class BeforeToolCall(HookEvent):
    tool_use: ToolUse


@dataclass(kw_only=True)
class AfterToolCall(HookEvent):
    tool_use: ToolUse
    result: ToolResult
    error: BaseException | None = None
    reverse_callbacks = True


@dataclass(kw_only=True)
class RedactionRequested(HookEvent):
    """A guardrail asked for the latest user message to be replaced by ``redacted``."""

    redacted: Message


E = TypeVar("E", bound=HookEvent)
HookCallback = Callable[[Any], "Awaitable[None] | None"]


@runtime_checkable
class HookProvider(Protocol):
    """Anything that registers callbacks on an Agent's :class:`HookRegistry`."""

    def register_hooks(self, registry: HookRegistry) -> None: ...


@dataclass
class HookRegistry:
    """Maps event types to callbacks; callbacks may be plain functions or coroutines."""

    _callbacks: dict[type[HookEvent], list[HookCallback]] = field(default_factory=dict)

    def add_callback(self, event_type: type[E], callback: Callable[[E], Awaitable[None] | None]) -> None:
        if not (isinstance(event_type, type) and issubclass(event_type, HookEvent)):
            raise TypeError(f"event_type must be a HookEvent subclass, got {event_type!r}")
        self._callbacks.setdefault(event_type, []).append(callback)

    def add_hook(self, provider: HookProvider) -> None:
        provider.register_hooks(self)

    def callbacks_for(self, event: HookEvent) -> list[HookCallback]:
        found: list[HookCallback] = []
        for cls in type(event).__mro__:
            found.extend(self._callbacks.get(cls, []))
        return list(reversed(found)) if event.reverse_callbacks else found

    async def invoke(self, event: HookEvent) -> None:
        """Run every callback for ``event`` in order; an exception propagates to the agent loop."""
        for callback in self.callbacks_for(event):
            outcome = callback(event)
            if inspect.isawaitable(outcome):
                await outcome

    def has_callbacks(self) -> bool:
        return any(self._callbacks.values())
