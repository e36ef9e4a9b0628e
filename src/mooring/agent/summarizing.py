"""``SummarizingConversationManager``: older turns replaced by a model-written summary.

Nothing is deleted: the summarized messages stay in the session store (``mooring sessions
show`` lists them all). The summary lives in the conversation manager's state, in the shape
Strands' manager of the same name uses (``summary_message``, ``removed_message_count``), so
a session summarized by either SDK resumes in the other with the same summary in context; a
restore reads the summary plus the messages after ``removed_message_count``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

from mooring._sync import run_sync
from mooring.agent.conversation import ConversationManager, is_valid_start
from mooring.errors import ConfigurationError
from mooring.models import StreamAssembler
from mooring.types import ContentBlock, Message, tool_result_ids, tool_uses

if TYPE_CHECKING:
    from mooring.agent.agent import Agent

logger = logging.getLogger(__name__)

DEFAULT_SUMMARIZATION_PROMPT = """You condense the earlier part of a conversation between a user \
and an AI assistant so that the assistant can carry on without it.

Write a summary in the third person, as bullet points, with:
- the user's goals, questions and instructions, and any decisions taken;
- every significant tool call, with its inputs and what it returned;
- facts, figures, names, code and file paths that may matter later;
- what was still open or pending at the end.

Do not answer the user, do not add commentary, do not speculate about tools that were not used."""

#: The request appended after the messages to summarize.
SUMMARIZE_REQUEST = "Summarize the conversation so far, following your instructions."


class SummarizingConversationManager(ConversationManager):
    """Summarizes the oldest part of the conversation when it no longer fits.

    When the context is over ``max_context_tokens`` (checked before every model call), or the
    model reports a context-window overflow, the oldest ``summary_ratio`` of the window
    (never the last ``preserve_recent_messages``, never splitting a toolUse from its
    toolResult) is replaced by a summary written by the agent's own model, or by
    ``summarization_agent`` (for example a cheaper model). Oversized tool results are
    truncated first (``should_truncate_results``). A summarization that fails leaves the
    summary as it was, logs a warning and trims the window instead, as the sliding window does.

    Example::

        manager = SummarizingConversationManager(max_context_tokens=50_000, pin_first_messages=1)
        agent = Agent(agent_id="assistant", conversation_manager=manager, session_manager=...)
    """

    def __init__(
        self,
        summary_ratio: float = 0.3,
        preserve_recent_messages: int = 10,
        summarization_agent: Agent | None = None,
        summarization_system_prompt: str | None = None,
        *,
        max_context_tokens: int | None = None,
        should_truncate_results: bool = True,
        max_result_tokens: int | None = None,
        pin_first_messages: int = 0,
    ) -> None:
        super().__init__(
            max_context_tokens=max_context_tokens,
            should_truncate_results=should_truncate_results,
            max_result_tokens=max_result_tokens,
            pin_first_messages=pin_first_messages,
        )
        if not isinstance(summary_ratio, (int, float)) or not 0.1 <= summary_ratio <= 0.8:
            raise ValueError(f"summary_ratio must be between 0.1 and 0.8, got {summary_ratio!r}")
        if not isinstance(preserve_recent_messages, int) or preserve_recent_messages < 0:
            raise ValueError(f"preserve_recent_messages must be a non-negative int, got {preserve_recent_messages!r}")
        if summarization_agent is not None and summarization_system_prompt is not None:
            raise ConfigurationError(
                "give either summarization_agent or summarization_system_prompt: the agent's own system prompt is used"
            )
        if summarization_agent is not None and summarization_agent.session_manager is not None:
            raise ConfigurationError(
                "the summarization_agent must not have a session_manager: its conversations are throwaway"
            )
        self.summary_ratio = float(summary_ratio)
        self.preserve_recent_messages = preserve_recent_messages
        self.summarization_agent = summarization_agent
        self.summarization_system_prompt = summarization_system_prompt
        self.summary_message: Message | None = None

    # -- the ConversationManager interface ----------------------------------------------------

    def prefix_messages(self) -> list[Message]:
        return [*self._pinned, *([self.summary_message] if self.summary_message is not None else [])]

    def apply_management(self, agent: Agent) -> None:
        return None  # the budget is checked before each model call

    def reduce_context(self, agent: Agent, error: Exception | None = None) -> None:
        run_sync(self.reduce_context_async(agent, error))

    async def reduce_context_async(self, agent: Agent, error: Exception | None = None) -> None:
        if self._start_capping(agent):
            return
        if await self._fit(agent, self.model_view(agent)):
            return
        if error is not None:
            raise error
        raise RuntimeError("the conversation cannot be reduced any further")

    async def _fit(self, agent: Agent, view: list[Message]) -> bool:
        count = self._summary_cut(agent)
        if count is not None:
            try:
                summary = await self._summarize(agent, view, count)
            except Exception as exc:
                logger.warning(
                    "agent_id=<%s> | summarization failed (%s: %s); trimming the window instead",
                    agent.agent_id,
                    type(exc).__name__,
                    exc,
                )
            else:
                # Only now is anything changed: a failed call leaves the manager as it was.
                self._cut_window(agent, count)
                front = len(self._pinned)
                if self.summary_message is not None:
                    agent.messages[front] = summary
                else:
                    agent.messages.insert(front, summary)
                self.summary_message = summary
                return True
        elif self.summary_message is not None or self.removed_message_count:
            logger.info("agent_id=<%s> | nothing more to summarize; trimming the window", agent.agent_id)
        if self.max_context_tokens is not None:
            return self._trim_to_budget(agent, view)
        return self._trim_half(agent)

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "summary_message": self.summary_message}

    def restore_from_session(self, state: dict[str, Any]) -> list[Message] | None:
        summary = state.get("summary_message")
        self.summary_message = cast(Message, summary) if isinstance(summary, dict) and "content" in summary else None
        return super().restore_from_session(state)

    # -- summarizing --------------------------------------------------------------------------

    def _summary_cut(self, agent: Agent) -> int | None:
        """How many window messages to summarize, or None when there is nothing to summarize."""
        window = agent.messages[len(self.prefix_messages()) :]
        pins = self._first_cut(agent)
        count = max(1, int(len(window) * self.summary_ratio))
        count = min(count + pins, len(window) - self.preserve_recent_messages)
        # The kept part may not open with a toolResult, nor with a toolUse whose result is cut off.
        while 0 < count < len(window) and (
            tool_result_ids(window[count])
            or (tool_uses(window[count]) and (count + 1 >= len(window) or not tool_result_ids(window[count + 1])))
        ):
            count += 1
        if count <= pins or count >= len(window):
            return None
        return count

    async def _summarize(self, agent: Agent, view: list[Message], count: int) -> Message:
        """The new summary of the previous one plus the first ``count`` window messages."""
        front = len(self.prefix_messages())
        pins = self._first_cut(agent)
        covered = view[front + pins : front + count]
        if self.summary_message is not None:
            covered = [view[len(self._pinned)], *covered]
        if self.summarization_agent is not None:
            reply = await self._ask_agent(self.summarization_agent, covered)
        else:
            reply = await self._ask_model(agent, covered)
        texts: list[ContentBlock] = [{"text": b["text"]} for b in reply["content"] if b.get("text")]
        if not texts:
            raise ValueError("the summarization reply has no text")
        logger.debug("agent_id=<%s> | summarized %d messages", agent.agent_id, len(covered))
        # A user message, so the kept part (which may open with an answer) still alternates.
        return {"role": "user", "content": texts}

    async def _ask_model(self, agent: Agent, covered: list[Message]) -> Message:
        request: list[Message] = [*covered, {"role": "user", "content": [{"text": SUMMARIZE_REQUEST}]}]
        prompt = self.summarization_system_prompt or DEFAULT_SUMMARIZATION_PROMPT
        assembler = StreamAssembler()
        async for event in agent.model.stream(request, None, prompt):
            assembler.feed(event)
        return assembler.message()

    async def _ask_agent(self, helper: Agent, covered: list[Message]) -> Message:
        saved = helper.messages
        helper.messages = list(covered)
        try:
            result = await helper.invoke_async(SUMMARIZE_REQUEST)
        finally:
            helper.messages = saved
        return result.message

    def _trim_half(self, agent: Agent) -> bool:
        """The fallback without a budget: drop about half the window at a user prompt."""
        window = agent.messages[len(self.prefix_messages()) :]
        index = max(2, len(window) // 2) + self._first_cut(agent)
        while index < len(window) and not is_valid_start(window, index):
            index += 1
        if index >= len(window):
            return False
        self._cut_window(agent, index)
        return True
