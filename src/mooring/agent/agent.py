"""The Agent: the model/tool loop and its lifecycle events."""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from mooring._ids import validate_id
from mooring._sync import run_sync
from mooring.agent.callbacks import PrintingCallbackHandler, null_callback_handler
from mooring.agent.conversation import ConversationManager, SlidingWindowConversationManager
from mooring.agent.hooks import (
    AfterInvocation,
    AfterModelCall,
    AfterToolCall,
    AgentInitialized,
    BeforeInvocation,
    BeforeModelCall,
    BeforeToolCall,
    HookProvider,
    HookRegistry,
    MessageAdded,
    RedactionRequested,
)
from mooring.agent.result import AgentResult
from mooring.agent.state import AgentState
from mooring.agent.structured import DEFAULT_STRUCTURED_OUTPUT_RETRIES, StructuredOutputRun, accepts_tool_choice
from mooring.agent.tool_caller import ToolCaller
from mooring.agent.tools import ToolContext, ToolRegistry, error_result
from mooring.errors import (
    ConcurrentInvocationError,
    ContextWindowOverflowError,
    MaxCyclesExceededError,
    MissingAgentIdError,
)
from mooring.models import Model, StreamAssembler, resolve_model
from mooring.types import ContentBlock, Message, ToolResult, ToolUse, tool_result_ids, tool_uses

if TYPE_CHECKING:
    from pydantic import BaseModel

    T = TypeVar("T", bound=BaseModel)

logger = logging.getLogger(__name__)

_DEFAULT: Any = object()

#: Context-window overflows one model call may recover from before the error is raised.
MAX_OVERFLOW_RETRIES = 4

#: Text of the assistant message that closes a turn which never got its answer (a crash or an
#: error mid-turn), so the conversation stays a valid user/assistant alternation.
INTERRUPTED_TEXT = "[mooring] The previous invocation stopped before this turn was answered."


class Agent:
    """An AI agent: a model, tools, a conversation and its state.

    Example::

        from mooring import Agent, tool

        @tool
        def add(a: int, b: int) -> int:
            '''Add two integers.'''
            return a + b

        agent = Agent(tools=[add])          # model=None means $MOORING_MODEL or "offline"
        result = agent("Use add on 2 and 3")
        print(result.stop_reason, str(result))
    """

    def __init__(
        self,
        model: Model | str | None = None,
        *,
        agent_id: str | None = None,
        name: str | None = None,
        system_prompt: str | None = None,
        tools: Iterable[Any] = (),
        messages: list[Message] | None = None,
        state: dict[str, Any] | AgentState | None = None,
        session_manager: HookProvider | None = None,
        conversation_manager: ConversationManager | None = None,
        hooks: Iterable[HookProvider] = (),
        callback_handler: Callable[..., None] | None = _DEFAULT,
        max_cycles: int = 25,
        structured_output_retries: int = DEFAULT_STRUCTURED_OUTPUT_RETRIES,
        record_direct_tool_call: bool = True,
    ) -> None:
        if session_manager is not None and agent_id is None:
            raise MissingAgentIdError(
                "an Agent with a session_manager needs an agent_id, the name its conversation and state "
                'are stored under: Agent(agent_id="assistant", session_manager=...). A session written by '
                'an agent without one (Strands stores it as agent_default) loads with agent_id="default"'
            )
        self.model: Model = resolve_model(model)
        self.agent_id = validate_id(agent_id if agent_id is not None else "default", "agent_id")
        self.name = name or self.agent_id
        self.system_prompt = system_prompt
        self.messages: list[Message] = copy.deepcopy(list(messages or []))
        self.state = state if isinstance(state, AgentState) else AgentState(state)
        self.conversation_manager = conversation_manager or SlidingWindowConversationManager()
        self.tool_registry = ToolRegistry(tools)
        if callback_handler is _DEFAULT:
            callback_handler = PrintingCallbackHandler()
        self.callback_handler: Callable[..., None] = callback_handler or null_callback_handler
        if not isinstance(max_cycles, int) or max_cycles < 1:
            raise ValueError(f"max_cycles must be a positive int, got {max_cycles!r}")
        self.max_cycles = max_cycles
        #: Invalid structured outputs the model may correct before StructuredOutputError.
        self.structured_output_retries = structured_output_retries
        #: Whether ``agent.tool.NAME(...)`` records the call in the conversation by default.
        self.record_direct_tool_call = record_direct_tool_call
        self.session_manager = session_manager
        self.hooks = HookRegistry()
        if session_manager is not None:
            self.hooks.add_hook(session_manager)
        for provider in hooks:
            self.hooks.add_hook(provider)
        self._invocation_lock = threading.Lock()
        run_sync(self.hooks.invoke(AgentInitialized(agent=self)))

    # -- invocation ---------------------------------------------------------------------------

    def __call__(
        self, prompt: str | list[ContentBlock] | None = None, *, structured_output_model: type[BaseModel] | None = None
    ) -> AgentResult:
        """Run one invocation synchronously; works in scripts and inside a running event loop.

        With ``structured_output_model`` (a pydantic class) the answer is also returned as a
        validated instance in ``result.structured_output``; see :meth:`structured_output`.
        """
        return run_sync(self.invoke_async(prompt, structured_output_model=structured_output_model))

    def structured_output(self, output_model: type[T], prompt: str | list[ContentBlock] | None = None) -> T:
        """Run one invocation whose answer is a validated ``output_model`` instance.

        The model is made to call a tool whose input schema is ``output_model``'s JSON schema;
        an invalid answer is sent back as an error tool result, at most
        ``structured_output_retries`` times, then :class:`~mooring.errors.StructuredOutputError`
        is raised. The calls are part of the conversation and stored like any turn.

        Example::

            class Weather(BaseModel):
                city: str
                celsius: float

            weather = agent.structured_output(Weather, "What is the weather in Paris?")
        """
        return run_sync(self.structured_output_async(output_model, prompt))

    async def structured_output_async(self, output_model: type[T], prompt: str | list[ContentBlock] | None = None) -> T:
        """The async form of :meth:`structured_output`."""
        result = await self.invoke_async(prompt, structured_output_model=output_model)
        value: T = result.structured_output
        return value

    async def invoke_async(
        self, prompt: str | list[ContentBlock] | None = None, *, structured_output_model: type[BaseModel] | None = None
    ) -> AgentResult:
        result: AgentResult | None = None
        async for event in self.stream_async(prompt, structured_output_model=structured_output_model):
            self.callback_handler(**event)
            if "result" in event:
                result = event["result"]
        assert result is not None
        return result

    async def stream_async(
        self, prompt: str | list[ContentBlock] | None = None, *, structured_output_model: type[BaseModel] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Run one invocation, yielding events as they happen.

        Events are dicts: ``{"data": text}`` for answer text as it streams, ``{"event": raw}``
        for every raw model event, ``{"tool_use": ...}`` / ``{"tool_result": ...}`` around
        tool calls, ``{"message": msg}`` for each message added, and finally
        ``{"result": AgentResult}`` (with ``structured_output`` set when a
        ``structured_output_model`` was given).
        """
        structured = (
            None
            if structured_output_model is None
            else StructuredOutputRun(structured_output_model, retries=self.structured_output_retries)
        )
        if structured is not None:
            structured.tool_specs(self.tool_registry.specs)  # a name clash is refused before anything runs
        if not self._invocation_lock.acquire(blocking=False):
            raise ConcurrentInvocationError(
                f"agent {self.agent_id!r} is already running an invocation; wait for it to finish "
                "or use a second Agent instance"
            )
        result: AgentResult | None = None
        error: BaseException | None = None
        try:
            await self.hooks.invoke(BeforeInvocation(agent=self))
            await self.repair_conversation_tail()
            prompt_messages = self._prompt_messages(prompt)
            if (
                structured is not None
                and not prompt_messages
                and (not self.messages or self.messages[-1]["role"] == "assistant")
            ):
                prompt_messages = [structured.instruction()]  # no prompt: ask for the output of the conversation so far
            for message in prompt_messages:
                await self._append_message(message)
            try:
                async for event in self._cycle_loop(structured):
                    if "result" in event:
                        result = event["result"]
                    yield event
            except BaseException:
                # A prompt that never got any answer is taken back, so a failed invocation
                # leaves the conversation (and the store) as it was before.
                if prompt_messages and self.messages and self.messages[-1] is prompt_messages[-1]:
                    del self.messages[-len(prompt_messages) :]
                raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            await self._finish_invocation(result, error)

    async def _finish_invocation(self, result: AgentResult | None, error: BaseException | None) -> None:
        """The end of every invocation, whatever happened: the window is trimmed, then
        ``AfterInvocation`` fires (the session writes the turn there), then the lock is freed."""
        try:
            try:
                await self.conversation_manager.apply_management_async(self)
            finally:
                await self.hooks.invoke(AfterInvocation(agent=self, result=result, error=error))
        finally:
            self._invocation_lock.release()

    def _prompt_messages(self, prompt: str | list[ContentBlock] | None) -> list[Message]:
        if prompt is None:
            return []
        if isinstance(prompt, str):
            return [{"role": "user", "content": [{"text": prompt}]}]
        if isinstance(prompt, list) and all(isinstance(b, dict) for b in prompt):
            return [{"role": "user", "content": copy.deepcopy(prompt)}]
        raise TypeError(f"prompt must be a string or a list of content blocks, got {type(prompt).__name__}")

    async def _append_message(self, message: Message) -> None:
        """The one place a message enters ``agent.messages``; fires MessageAdded."""
        self.messages.append(message)
        await self.hooks.invoke(MessageAdded(agent=self, message=message))

    async def repair_conversation_tail(self) -> bool:
        """Close a turn left open by a crash or an error, so the next prompt is valid.

        A trailing toolUse gets error toolResults, and a trailing user message gets a short
        assistant note. Returns whether anything was added.
        """
        if not self.messages:
            return False
        last = self.messages[-1]

        if last["role"] == "assistant":
            uses = tool_uses(last)
            if not uses:
                return False
            results: list[ContentBlock] = [
                {"toolResult": error_result(u["toolUseId"], "tool call interrupted before it returned")} for u in uses
            ]
            await self._append_message({"role": "user", "content": results})

        await self._append_message({"role": "assistant", "content": [{"text": INTERRUPTED_TEXT}]})
        logger.info("agent_id=<%s> | closed an unfinished turn", self.agent_id)
        return True

    async def _cycle_loop(self, structured: StructuredOutputRun | None = None) -> AsyncIterator[dict[str, Any]]:
        specs = self.tool_registry.specs if structured is None else structured.tool_specs(self.tool_registry.specs)
        forcing = structured is not None and accepts_tool_choice(self.model)
        cycles = 0
        overflows = 0
        usage = {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0}
        while True:
            cycles += 1
            if cycles > self.max_cycles:
                raise MaxCyclesExceededError(
                    f"agent {self.agent_id!r} ran {self.max_cycles} model/tool cycles without finishing; "
                    "raise max_cycles or check the tools for a loop"
                )
            await self.hooks.invoke(BeforeModelCall(agent=self))
            assembler = StreamAssembler()
            try:
                # The model reads the history in place (a deep copy per call cost O(history)
                # every cycle); the Model protocol forbids changing it. The conversation manager
                # fits it into the budget first; truncated tool results are copies, so what is
                # stored keeps them whole.
                model_input = await self.conversation_manager.prepare_model_input(self)
                choice = structured.tool_choice(other_tools=bool(self.tool_registry.names)) if structured else None
                extra = {"tool_choice": choice} if forcing and choice is not None else {}
                async for event in self.model.stream(model_input, specs, self.system_prompt, **extra):
                    redaction_before = assembler.redaction
                    text = assembler.feed(event)
                    yield {"event": event}
                    if text:
                        yield {"data": text}
                    if assembler.redaction is not None and assembler.redaction != redaction_before:
                        await self._redact_latest_user_message(assembler.redaction)
            except ContextWindowOverflowError as exc:
                await self.hooks.invoke(AfterModelCall(agent=self, error=exc))
                # Each overflow makes the context smaller (truncated results first, then a
                # summary or a trim); a manager that cannot reduce it any further re-raises.
                overflows += 1
                if overflows > MAX_OVERFLOW_RETRIES:
                    raise
                await self.conversation_manager.reduce_context_async(self, exc)
                cycles -= 1
                continue
            except Exception as exc:
                await self.hooks.invoke(AfterModelCall(agent=self, error=exc))
                raise
            await self.hooks.invoke(AfterModelCall(agent=self, stop_reason=assembler.stop_reason))
            self.conversation_manager.record_usage(len(model_input), assembler.usage.get("inputTokens", 0))
            for key in usage:
                usage[key] += assembler.usage.get(key, 0)
            message = assembler.message()
            await self._append_message(message)
            yield {"message": message}
            uses = tool_uses(message)
            # A forced tool call may come with stop reason "end_turn" (OpenAI says "stop").
            if uses and (assembler.stop_reason == "tool_use" or structured is not None):
                async for event in self._tool_round(uses, structured):
                    yield event
            if structured is not None:
                answer = await self._structured_step(structured, uses)
                if answer is None:
                    continue
                message = answer
                yield {"message": message}
            elif uses and assembler.stop_reason == "tool_use":
                continue
            yield {
                "result": AgentResult(
                    stop_reason="end_turn" if structured is not None else assembler.stop_reason,
                    message=message,
                    usage=usage,
                    cycles=cycles,
                    state=self.state.get(),
                    structured_output=structured.value if structured is not None else None,
                )
            }
            return

    async def _tool_round(
        self, uses: list[ToolUse], structured: StructuredOutputRun | None
    ) -> AsyncIterator[dict[str, Any]]:
        """Run the tool calls of one answer (in parallel) and add their results."""
        for use in uses:
            yield {"tool_use": use}
        import asyncio  # imported by the first call, as in mooring._sync

        results = await asyncio.gather(*(self._run_tool(use, structured) for use in uses))
        for tool_result in results:
            yield {"tool_result": tool_result}
        result_message: Message = {"role": "user", "content": [{"toolResult": r} for r in results]}
        await self._append_message(result_message)
        yield {"message": result_message}

    async def _structured_step(self, structured: StructuredOutputRun, uses: list[ToolUse]) -> Message | None:
        """After an answer of a structured-output turn: the closing message once the output
        validated, else ``None`` to call the model again (or StructuredOutputError)."""
        if structured.value is not None:
            answer = structured.answer_message()
            await self._append_message(answer)
            return answer
        if uses and not any(structured.owns(u) for u in uses):
            return None  # other tools ran; the model goes on
        if not uses:
            # Answered in text: ask again for the tool; this counts as a failed attempt.
            if structured.note_failure(called=False):
                raise structured.error()
            await self._append_message(structured.instruction())
            return None
        if structured.note_failure(called=True):
            await self._append_message(structured.failure_message())
            raise structured.error()
        return None

    async def _run_tool(self, use: ToolUse, structured: StructuredOutputRun | None = None) -> ToolResult:
        if structured is not None and structured.owns(use):
            return structured.handle(use)
        await self.hooks.invoke(BeforeToolCall(agent=self, tool_use=use))
        found = self.tool_registry.get(use["name"])
        if found is None:
            available = ", ".join(self.tool_registry.names) or "none"
            result = error_result(use["toolUseId"], f"unknown tool {use['name']!r}; available tools: {available}")
        else:
            context = ToolContext(agent=self, tool_use_id=use["toolUseId"], tool_name=use["name"])
            result = await found.invoke(use["toolUseId"], use.get("input"), context)
        await self.hooks.invoke(AfterToolCall(agent=self, tool_use=use, result=result))
        return result

    async def _redact_latest_user_message(self, text: str) -> None:
        for message in reversed(self.messages):
            if message["role"] == "user" and not tool_result_ids(message):
                message["content"] = [{"text": text}]
                await self.hooks.invoke(RedactionRequested(agent=self, redacted=message))
                return

    # -- conveniences -------------------------------------------------------------------------

    @property
    def tool(self) -> ToolCaller:
        """Direct tool calls: ``agent.tool.word_count(text="...")`` runs the tool and records
        the call in the conversation (see :class:`~mooring.agent.tool_caller.ToolCaller`)."""
        return ToolCaller(self)

    @property
    def tool_names(self) -> list[str]:
        return self.tool_registry.names
