"""Conversation managers: which part of the history the model sees."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from mooring.types import Message, tool_result_ids, tool_uses

if TYPE_CHECKING:
    from mooring.agent.agent import Agent

logger = logging.getLogger(__name__)


class ConversationManager(ABC):
    """Trims ``agent.messages`` from the front and reports how many it removed.

    ``removed_message_count`` is the number of messages removed from the front of the whole
    history; a session restores exactly the messages after it.
    """

    def __init__(self) -> None:
        self.removed_message_count = 0

    @abstractmethod
    def apply_management(self, agent: Agent) -> None:
        """Called at the end of every invocation."""

    @abstractmethod
    def reduce_context(self, agent: Agent, error: Exception | None = None) -> None:
        """Make the conversation smaller after a context-window overflow, or raise ``error``."""

    def get_state(self) -> dict[str, Any]:
        return {"__name__": type(self).__name__, "removed_message_count": self.removed_message_count}

    def restore_from_session(self, state: dict[str, Any]) -> list[Message] | None:
        """Adopt a stored state; returns messages to put before the restored ones (none here)."""
        name = state.get("__name__")
        if name is not None and name != type(self).__name__:
            logger.warning(
                "stored conversation manager is %s, this agent uses %s; keeping its offset only",
                name,
                type(self).__name__,
            )
        count = state.get("removed_message_count", 0)
        if not isinstance(count, int) or count < 0:
            raise ValueError(f"invalid removed_message_count in stored state: {count!r}")
        self.removed_message_count = count
        return None

    def _remove_front(self, agent: Agent, count: int) -> None:
        if count > 0:
            del agent.messages[:count]
            self.removed_message_count += count


class NullConversationManager(ConversationManager):
    """Keeps the whole history; an overflow is re-raised."""

    def apply_management(self, agent: Agent) -> None:
        return None

    def reduce_context(self, agent: Agent, error: Exception | None = None) -> None:
        if error is not None:
            raise error
        raise RuntimeError("NullConversationManager cannot reduce the context")


def is_valid_start(messages: list[Message], index: int) -> bool:
    """A window may start at ``index`` if that message is a user prompt (not a tool result)."""
    if index >= len(messages):
        return True
    message = messages[index]
    return message["role"] == "user" and not tool_result_ids(message) and not tool_uses(message)


class SlidingWindowConversationManager(ConversationManager):
    """Keeps at most ``window_size`` messages, never separating a toolUse from its toolResult.

    Trimming always leaves the window starting at a user prompt; when no such point fits in
    the window the whole in-memory history is removed (it stays in the session store).
    """

    def __init__(self, window_size: int = 40, *, should_truncate_results: bool = True) -> None:
        super().__init__()
        if not isinstance(window_size, int) or window_size < 0:
            raise ValueError(f"window_size must be a non-negative int, got {window_size!r}")
        self.window_size = window_size
        self.should_truncate_results = should_truncate_results

    def apply_management(self, agent: Agent) -> None:
        excess = len(agent.messages) - self.window_size
        if excess > 0:
            self._trim(agent, excess)

    def reduce_context(self, agent: Agent, error: Exception | None = None) -> None:
        # Drop at least half of the current messages (and at least 2), keeping pairs whole.
        wanted = max(2, len(agent.messages) // 2)
        if len(agent.messages) <= 1:
            if error is not None:
                raise error
            raise RuntimeError("the conversation cannot be reduced any further")
        self._trim(agent, min(wanted, len(agent.messages) - 1))

    def _trim(self, agent: Agent, at_least: int) -> None:
        messages = agent.messages
        index = at_least
        while index < len(messages) and not is_valid_start(messages, index):
            index += 1
        self._remove_front(agent, index)
