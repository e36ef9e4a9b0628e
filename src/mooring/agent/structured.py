"""Structured output: the answer of a turn as a validated pydantic instance.

The pydantic model becomes one more tool whose input schema is the model's JSON schema, and
the model is made to call it (a forced tool choice, sent by every provider in its own wire
format). Its input is validated; an invalid one goes back to the model as an error
toolResult and the model tries again, at most ``retries`` times. Every call and result is an
ordinary message of the conversation, so a structured-output turn is stored and restored
like any other; it ends with an assistant message holding the validated JSON.

pydantic is imported by the first structured-output turn, never by ``import mooring``.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mooring.agent.tools import error_result
from mooring.errors import StructuredOutputError
from mooring.types import Message, ToolResult, ToolUse

if TYPE_CHECKING:
    from pydantic import BaseModel

#: Invalid answers (a failed validation, or no call of the output tool) the model may correct
#: before :class:`~mooring.errors.StructuredOutputError` is raised.
DEFAULT_STRUCTURED_OUTPUT_RETRIES = 3


def tool_name_for(output_model: type[Any]) -> str:
    """The output tool's name: the class name, reduced to what every provider accepts."""
    name = re.sub(r"[^a-zA-Z0-9_-]", "_", output_model.__name__)[:64]
    return name or "structured_output"


def accepts_tool_choice(model: Any) -> bool:
    """Whether ``model.stream`` takes a ``tool_choice`` keyword (every model mooring ships does;
    a custom Model may not, and then it is asked for the tool in words only)."""
    try:
        parameters = inspect.signature(model.stream).parameters
    except (TypeError, ValueError):
        return False
    return "tool_choice" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


class StructuredOutputRun:
    """The structured-output side of one invocation: the tool, the forcing, the retries."""

    def __init__(self, output_model: type[BaseModel], *, retries: int = DEFAULT_STRUCTURED_OUTPUT_RETRIES) -> None:
        import pydantic

        if not (isinstance(output_model, type) and issubclass(output_model, pydantic.BaseModel)):
            raise TypeError(f"structured_output_model must be a pydantic BaseModel subclass, got {output_model!r}")
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"structured output retries must be a non-negative int, got {retries!r}")
        self.output_model = output_model
        self.retries = retries
        self.name = tool_name_for(output_model)
        schema = output_model.model_json_schema()
        description = inspect.cleandoc(output_model.__doc__ or "") if output_model.__doc__ else ""
        if not description or output_model.__doc__ == pydantic.BaseModel.__doc__:
            description = f"Record the final answer as a {output_model.__name__}."
        self.spec: dict[str, Any] = {
            "name": self.name,
            "description": description,
            "inputSchema": {"json": schema},
        }
        self.value: BaseModel | None = None
        self.failures = 0
        self.last_errors: list[dict[str, Any]] = []

    # -- what the model is sent -----------------------------------------------------------------

    def tool_specs(self, agent_specs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        if any(spec["name"] == self.name for spec in agent_specs):
            raise ValueError(f"the agent already has a tool named {self.name!r}; rename the structured output model")
        return [*agent_specs, self.spec]

    def tool_choice(self, *, other_tools: bool) -> dict[str, Any] | None:
        """Converse-style tool choice forcing the output tool (each provider translates it).

        With other tools on the agent the first answer is left free, so the model can call
        them before the output tool; from the first failed attempt on, every call is forced.
        """
        if other_tools and self.failures == 0:
            return None
        return {"tool": {"name": self.name}}

    def instruction(self) -> Message:
        """The user message that asks for the output tool when the model answered in text."""
        return {
            "role": "user",
            "content": [
                {
                    "text": f"Give your final answer by calling the {self.name} tool, with input that "
                    f"matches its schema. Do not answer in text."
                }
            ],
        }

    # -- what the model answered ----------------------------------------------------------------

    def owns(self, use: ToolUse) -> bool:
        return use["name"] == self.name

    def handle(self, use: ToolUse) -> ToolResult:
        """Validate one call of the output tool; the result goes back to the model."""
        import pydantic

        tool_input = use.get("input")
        try:
            value = self.output_model.model_validate(tool_input if tool_input is not None else {})
        except pydantic.ValidationError as exc:
            errors = exc.errors(include_url=False, include_context=False)
            self.last_errors = [dict(e) for e in errors]
            details = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in errors)
            return error_result(
                use["toolUseId"],
                f"{self.name} input is not valid ({details}). Call {self.name} again with corrected input.",
            )
        if self.value is None:
            self.value = value
        return {
            "toolUseId": use["toolUseId"],
            "status": "success",
            "content": [{"text": f"{self.name} recorded."}],
        }

    def note_failure(self, *, called: bool) -> bool:
        """Count one invalid answer; returns whether the retries are used up."""
        self.failures += 1
        if not called:
            self.last_errors = []
        return self.failures > self.retries

    def error(self) -> StructuredOutputError:
        what = "invalid input" if self.last_errors else "no call of the output tool"
        return StructuredOutputError(
            f"the model gave no valid {self.output_model.__name__} after {self.failures} attempts "
            f"(last: {what}); errors: {self.last_errors}",
            output_model=self.output_model,
            attempts=self.failures,
            errors=self.last_errors,
        )

    def answer_message(self) -> Message:
        """The assistant message that closes the turn: the validated output as JSON."""
        assert self.value is not None
        return {"role": "assistant", "content": [{"text": self.value.model_dump_json()}]}

    def failure_message(self) -> Message:
        """The assistant message that closes a turn whose output never validated."""
        text = json.dumps({"error": f"no valid {self.output_model.__name__}", "attempts": self.failures})
        return {"role": "assistant", "content": [{"text": f"[mooring] structured output failed: {text}"}]}
