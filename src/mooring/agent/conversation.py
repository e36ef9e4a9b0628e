"""Conversation managers: which part of the history the model sees."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from mooring.agent.budget import cap_tool_results, chars_per_token, estimate_tokens, fixed_chars, message_chars
from mooring.types import Message, tool_result_ids, tool_uses

if TYPE_CHECKING:
    from mooring.agent.agent import Agent

logger = logging.getLogger(__name__)

#: Tool-result cap (tokens) once an overflow started truncation on a manager with no budget.
DEFAULT_RESULT_TOKENS = 2000
#: Estimated (not provider-counted) tokens are counted as if a token were this share of its
#: characters-per-token estimate: a 10% margin.
ESTIMATE_HEADROOM = 0.9
_MAX_FITS = 8


class ConversationManager(ABC):
    """Decides which part of ``agent.messages`` the model sees, and trims it from the front.

    ``removed_message_count`` is the number of stored messages before the window; a session
    restores exactly the messages after it, behind any messages the manager keeps in its
    own state (pinned openings, a summary). Those are "the prefix": ``agent.messages`` is
    always the prefix followed by the stored messages from ``removed_message_count`` on.

    Options shared by the managers that take them:

    - ``max_context_tokens``: before every model call the context is counted (the provider's
      input tokens of the last call plus an estimate for what was added since, see
      :mod:`mooring.agent.budget`) and made smaller until it fits.
    - ``should_truncate_results``: tool results longer than ``max_result_tokens`` (default a
      quarter of ``max_context_tokens``) are cut down, with a marker, in what the model is
      sent; the stored messages keep them whole. Without a budget this starts after the first
      context-window overflow. Truncation comes first: only a context still too big is trimmed.
      Estimated tokens (what no provider count covers yet) carry a 10% margin
      (``ESTIMATE_HEADROOM``).
    - ``pin_first_messages=N``: the opening N messages (moved forward to the end of a tool
      exchange if needed) stay in every window, across restores.
    """

    def __init__(
        self,
        *,
        max_context_tokens: int | None = None,
        should_truncate_results: bool = False,
        max_result_tokens: int | None = None,
        pin_first_messages: int = 0,
    ) -> None:
        self.removed_message_count = 0
        for name, value in (("max_context_tokens", max_context_tokens), ("max_result_tokens", max_result_tokens)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int or None, got {value!r}")
        if not isinstance(pin_first_messages, int) or pin_first_messages < 0:
            raise ValueError(f"pin_first_messages must be a non-negative int, got {pin_first_messages!r}")
        self.max_context_tokens = max_context_tokens
        self.should_truncate_results = should_truncate_results
        self.max_result_tokens = max_result_tokens
        self.pin_first_messages = pin_first_messages
        self._pinned: list[Message] = []
        # (messages the last model call was sent, input tokens the provider reported for them)
        self._usage: tuple[int, int] | None = None
        self._capping = False  # results are truncated since an overflow (no budget set)

    @abstractmethod
    def apply_management(self, agent: Agent) -> None:
        """Called at the end of every invocation."""

    @abstractmethod
    def reduce_context(self, agent: Agent, error: Exception | None = None) -> None:
        """Make the conversation smaller after a context-window overflow, or raise ``error``."""

    async def apply_management_async(self, agent: Agent) -> None:
        """What the agent calls at the end of an invocation; a manager that calls a model overrides it."""
        self.apply_management(agent)

    async def reduce_context_async(self, agent: Agent, error: Exception | None = None) -> None:
        """What the agent calls on a context-window overflow."""
        if self._start_capping(agent):
            return
        self.reduce_context(agent, error)

    # -- the model's input --------------------------------------------------------------------

    def prefix_messages(self) -> list[Message]:
        """The messages kept in the manager's state, in front of the stored window."""
        return list(self._pinned)

    def model_view(self, agent: Agent) -> list[Message]:
        """``agent.messages`` as the model is sent them (oversized tool results cut down)."""
        cap = self._result_cap_chars(agent)
        return cap_tool_results(agent.messages, cap) if cap else list(agent.messages)

    def context_tokens(self, agent: Agent, view: list[Message]) -> int:
        """The size of ``view`` in tokens: the last reported count plus an estimate for the rest."""
        per_token = chars_per_token(agent.model)
        if self._usage is not None and self._usage[0] <= len(view):
            covered, reported = self._usage
            return reported + self._estimate(sum(message_chars(m) for m in view[covered:]), per_token)
        chars = fixed_chars(agent.system_prompt, agent.tool_registry.specs) + sum(message_chars(m) for m in view)
        return self._estimate(chars, per_token)

    @staticmethod
    def _estimate(chars: int, per_token: float) -> int:
        # Estimated tokens carry a margin, so an estimate a little low does not overshoot.
        return estimate_tokens(chars, per_token * ESTIMATE_HEADROOM)

    async def prepare_model_input(self, agent: Agent) -> list[Message]:
        """Called before every model call: fit the context into the budget, return what to send."""
        view = self.model_view(agent)
        if self.max_context_tokens is None:
            return view
        for _ in range(_MAX_FITS):
            if self.context_tokens(agent, view) <= self.max_context_tokens:
                break
            if not await self._fit(agent, view):
                logger.warning(
                    "agent_id=<%s> | the context is over max_context_tokens=%d and cannot be made smaller",
                    agent.agent_id,
                    self.max_context_tokens,
                )
                break
            view = self.model_view(agent)
        return view

    def record_usage(self, messages_sent: int, input_tokens: int) -> None:
        """The provider's input-token count for a call that was sent ``messages_sent`` messages.

        Kept (and stored with the manager state, so a restart counts the same) only when there
        is a budget to count against.
        """
        if self.max_context_tokens is not None:
            self._usage = (messages_sent, input_tokens) if input_tokens > 0 else None

    async def _fit(self, agent: Agent, view: list[Message]) -> bool:
        """Make the context smaller; returns whether anything changed."""
        return self._trim_to_budget(agent, view)

    # -- trimming -----------------------------------------------------------------------------

    def _first_cut(self, agent: Agent) -> int:
        """The smallest number of window messages a cut may remove (the pins not yet set aside)."""
        if not self.pin_first_messages or self._pinned or self.removed_message_count:
            return 0
        window = agent.messages[len(self.prefix_messages()) :]
        count = min(self.pin_first_messages, len(window))
        while count < len(window) and not is_valid_start(window, count):
            count += 1
        return count

    def _cut_window(self, agent: Agent, count: int) -> list[Message]:
        """Remove the first ``count`` messages of the stored window (pins set aside, not removed)."""
        pins = self._first_cut(agent)
        if count <= pins:
            return []
        front = len(self.prefix_messages())
        if pins:
            self._pinned = agent.messages[front : front + pins]
            self.removed_message_count += pins
            front += pins
            count -= pins
        removed = agent.messages[front : front + count]
        del agent.messages[front : front + count]
        self.removed_message_count += count
        self._usage = None
        return removed

    def _trim_to_budget(self, agent: Agent, view: list[Message]) -> bool:
        """Cut at the first user prompt after which the context fits (or the last one there is)."""
        assert self.max_context_tokens is not None
        per_token = chars_per_token(agent.model)
        front = len(self.prefix_messages())
        window = view[front:]
        sizes = [message_chars(m) for m in window]
        base = fixed_chars(agent.system_prompt, agent.tool_registry.specs) + sum(message_chars(m) for m in view[:front])
        remaining = sum(sizes)
        best: int | None = None
        pins = self._first_cut(agent)
        for cut in range(1, len(window)):
            remaining -= sizes[cut - 1]
            if cut < pins or not is_valid_start(window, cut):
                continue
            best = cut
            if self._estimate(base + remaining, per_token) <= self.max_context_tokens:
                break
        if best is None:
            return False
        self._cut_window(agent, best)
        return True

    def _result_cap_chars(self, agent: Agent) -> int | None:
        if not self.should_truncate_results or (self.max_context_tokens is None and not self._capping):
            return None
        tokens = self.max_result_tokens
        if tokens is None:
            tokens = max(1, self.max_context_tokens // 4) if self.max_context_tokens else DEFAULT_RESULT_TOKENS
        return int(tokens * chars_per_token(agent.model))

    def _start_capping(self, agent: Agent) -> bool:
        """After an overflow: start truncating results, if that makes the context smaller."""
        if not self.should_truncate_results or self._capping or self.max_context_tokens is not None:
            return False
        self._capping = True
        view = self.model_view(agent)
        if any(a is not b for a, b in zip(view, agent.messages, strict=True)):
            logger.info("agent_id=<%s> | context overflow: tool results are truncated from now on", agent.agent_id)
            return True
        return False

    # -- state --------------------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"__name__": type(self).__name__, "removed_message_count": self.removed_message_count}
        # mooring's own keys, written only when used; a Strands reader ignores them.
        if self._pinned:
            state["pinned_messages"] = list(self._pinned)
        if self._usage is not None:
            state["context_usage"] = {"messages": self._usage[0], "input_tokens": self._usage[1]}
        if self._capping:
            state["truncating_results"] = True
        return state

    def restore_from_session(self, state: dict[str, Any]) -> list[Message] | None:
        """Adopt a stored state; returns the messages to put before the restored window."""
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
        same_kind = name is None or name == type(self).__name__
        pinned = state.get("pinned_messages") if same_kind else None
        self._pinned = list(pinned) if isinstance(pinned, list) and count else []
        usage = state.get("context_usage") if same_kind else None
        self._usage = None
        if isinstance(usage, dict) and all(isinstance(usage.get(k), int) for k in ("messages", "input_tokens")):
            self._usage = (usage["messages"], usage["input_tokens"])
        self._capping = bool(state.get("truncating_results")) if same_kind else False
        return self.prefix_messages() or None

    def _remove_front(self, agent: Agent, count: int) -> None:
        self._cut_window(agent, count)


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
    ``max_context_tokens``, ``should_truncate_results``, ``max_result_tokens`` and
    ``pin_first_messages`` are described on :class:`ConversationManager`; pinned messages
    count towards ``window_size``.

    Example::

        manager = SlidingWindowConversationManager(40, max_context_tokens=100_000, pin_first_messages=2)
    """

    def __init__(
        self,
        window_size: int = 40,
        *,
        should_truncate_results: bool = True,
        max_context_tokens: int | None = None,
        max_result_tokens: int | None = None,
        pin_first_messages: int = 0,
    ) -> None:
        super().__init__(
            max_context_tokens=max_context_tokens,
            should_truncate_results=should_truncate_results,
            max_result_tokens=max_result_tokens,
            pin_first_messages=pin_first_messages,
        )
        if not isinstance(window_size, int) or window_size < 0:
            raise ValueError(f"window_size must be a non-negative int, got {window_size!r}")
        self.window_size = window_size

    def apply_management(self, agent: Agent) -> None:
        excess = len(agent.messages) - self.window_size
        if excess > 0:
            self._trim(agent, excess)

    def reduce_context(self, agent: Agent, error: Exception | None = None) -> None:
        # Drop at least half of the current window (and at least 2), keeping pairs whole.
        pins = self._first_cut(agent)
        window = len(agent.messages) - len(self.prefix_messages()) - pins
        if window <= 1:
            if error is not None:
                raise error
            raise RuntimeError("the conversation cannot be reduced any further")
        self._trim(agent, min(max(2, window // 2), window - 1))

    def _trim(self, agent: Agent, at_least: int) -> None:
        # Pins not yet set aside stay in memory, so the cut goes that much further.
        window = agent.messages[len(self.prefix_messages()) :]
        index = at_least + self._first_cut(agent)
        while index < len(window) and not is_valid_start(window, index):
            index += 1
        self._cut_window(agent, index)
