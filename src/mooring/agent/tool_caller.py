"""Direct tool calls: ``agent.tool.NAME(**kwargs)`` runs a tool without asking the model.

A recorded call (the default) becomes a turn of the conversation, in the shape Strands
records it: a user message that names the call and its input, the assistant's toolUse, the
user's toolResult, and a short assistant note that closes the turn. It runs like an
invocation, so a session manager takes the session's lease, catches up, and stores the four
messages through the same hooks (``BeforeInvocation``, ``MessageAdded``, ``AfterInvocation``;
the tool itself fires ``BeforeToolCall`` / ``AfterToolCall``). An unrecorded call
(``record_direct_tool_call=False``) only runs the tool.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mooring._sync import run_sync
from mooring.agent.hooks import BeforeInvocation
from mooring.agent.result import AgentResult
from mooring.errors import ConcurrentInvocationError
from mooring.types import Message, ToolResult, ToolUse

if TYPE_CHECKING:
    from mooring.agent.agent import Agent


class ToolCaller:
    """What ``agent.tool`` returns: each attribute is a tool of the agent, as a function.

    ``agent.tool.word_count(text="a b c")`` returns the tool's result (a toolResult dict:
    ``{"toolUseId", "status", "content"}``; a tool that raised gives ``status == "error"``).
    Two keywords belong to the call, not the tool: ``record_direct_tool_call`` (default: the
    agent's ``record_direct_tool_call``) and ``user_message_override`` (text put before the
    recorded user message). A name with underscores also finds a tool whose name has dashes
    in their place (``agent.tool.get_time`` calls ``get-time``).

    A recorded call refuses to start while an invocation of the same agent is running
    (:class:`~mooring.errors.ConcurrentInvocationError`); an unrecorded one may run then.
    """

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    def __getattr__(self, name: str) -> Callable[..., ToolResult]:
        if name.startswith("__"):
            raise AttributeError(name)  # copy, pickle and friends probe dunder names
        tool_name = self._resolve(name)
        agent = self._agent

        def call(
            *, record_direct_tool_call: bool | None = None, user_message_override: str | None = None, **kwargs: Any
        ) -> ToolResult:
            record = agent.record_direct_tool_call if record_direct_tool_call is None else record_direct_tool_call
            return run_sync(
                call_tool(agent, tool_name, kwargs, record=record, user_message_override=user_message_override)
            )

        call.__name__ = tool_name
        return call

    def __dir__(self) -> list[str]:
        return self._agent.tool_registry.names

    def _resolve(self, name: str) -> str:
        registry = self._agent.tool_registry
        if registry.get(name) is not None:
            return name
        for candidate in registry.names:
            if candidate.replace("-", "_") == name:
                return candidate
        available = ", ".join(registry.names) or "none"
        raise AttributeError(f"agent {self._agent.agent_id!r} has no tool named {name!r}; available tools: {available}")


async def call_tool(
    agent: Agent,
    tool_name: str,
    kwargs: dict[str, Any],
    *,
    record: bool = True,
    user_message_override: str | None = None,
) -> ToolResult:
    """Run ``tool_name`` with ``kwargs`` on ``agent``; with ``record``, as a stored turn."""
    use: ToolUse = {
        "toolUseId": f"tooluse_{tool_name}_{secrets.token_hex(6)}",
        "name": tool_name,
        "input": _recorded_input(agent, tool_name, kwargs),
    }
    # The tool gets every keyword; the history shows the ones its schema declares.
    run: ToolUse = {"toolUseId": use["toolUseId"], "name": tool_name, "input": dict(kwargs)}
    if not record:
        return await agent._run_tool(run)
    if not agent._invocation_lock.acquire(blocking=False):
        raise ConcurrentInvocationError(
            f"agent {agent.agent_id!r} is running an invocation; a recorded direct tool call "
            f"(agent.tool.{tool_name}) would interleave with it. Wait for it to finish, or pass "
            "record_direct_tool_call=False to run the tool without recording it"
        )
    result: AgentResult | None = None
    error: BaseException | None = None
    try:
        await agent.hooks.invoke(BeforeInvocation(agent=agent))
        await agent.repair_conversation_tail()
        tool_result = await agent._run_tool(run)
        text = f"agent.tool.{tool_name} direct tool call.\nInput parameters: {_dumps(use['input'])}\n"
        note: Message = {"role": "user", "content": [{"text": text}]}
        if user_message_override:
            note["content"].insert(0, {"text": f"{user_message_override}\n"})
        closing: Message = {"role": "assistant", "content": [{"text": f"agent.tool.{tool_name} was called."}]}
        call: Message = {"role": "assistant", "content": [{"toolUse": use}]}
        answer: Message = {"role": "user", "content": [{"toolResult": tool_result}]}
        for message in (note, call, answer, closing):
            await agent._append_message(message)
        result = AgentResult(stop_reason="end_turn", message=closing, cycles=0, state=agent.state.get())
        return tool_result
    except BaseException as exc:
        error = exc
        raise
    finally:
        await agent._finish_invocation(result, error)


def _recorded_input(agent: Agent, tool_name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The input as the history shows it: only the parameters the tool's schema declares."""
    found = agent.tool_registry.get(tool_name)
    properties = found.input_schema.get("properties") if found is not None else None
    if not isinstance(properties, dict):
        return dict(kwargs)
    return {k: v for k, v in kwargs.items() if k in properties}


def _dumps(value: Any) -> str:
    return json.dumps(value, default=lambda o: f"<not JSON: {type(o).__qualname__}>")
