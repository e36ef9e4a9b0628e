"""The ``@tool`` decorator and tool execution."""

from __future__ import annotations

import functools
import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, get_type_hints, overload

from mooring.errors import ToolError
from mooring.types import ToolResult, ToolResultContent

if TYPE_CHECKING:
    from mooring.agent.agent import Agent


@dataclass(kw_only=True)
class ToolContext:
    """Injected into a tool that declares a parameter annotated with ``ToolContext``."""

    agent: Agent
    tool_use_id: str
    tool_name: str


def _parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """The description (text before an ``Args:`` section) and per-parameter descriptions."""
    if not doc:
        return "", {}
    doc = inspect.cleandoc(doc)
    parts = re.split(r"^\s*(?:Args|Arguments|Parameters):\s*$", doc, maxsplit=1, flags=re.MULTILINE)
    description = parts[0].strip()
    params: dict[str, str] = {}
    if len(parts) == 2:
        current: str | None = None
        for line in parts[1].splitlines():
            if re.match(r"^\s*(Returns|Raises|Yields|Examples?):", line):
                break
            match = re.match(r"^\s*(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", line)
            if match:
                current = match.group(1).lstrip("*")
                params[current] = match.group(2).strip()
            elif current and line.strip():
                params[current] = (params[current] + " " + line.strip()).strip()
    return description, params


class FunctionTool:
    """A Python function exposed to the model as a tool."""

    def __init__(self, func: Callable[..., Any], *, name: str | None = None, description: str | None = None) -> None:
        self.func = func
        self.name = name or func.__name__
        if not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", self.name):
            raise ToolError(f"tool name {self.name!r} must be 1-64 characters of letters, digits, _ or -")
        doc_description, param_docs = _parse_docstring(func.__doc__)
        self.description = description or doc_description or self.name
        self.is_async = inspect.iscoroutinefunction(func)
        try:
            # ToolContext is resolvable by name even where it was imported locally.
            hints = get_type_hints(func, localns={"ToolContext": ToolContext})
        except NameError as exc:
            raise ToolError(f"tool {self.name!r}: cannot resolve a type hint: {exc}") from exc
        # pydantic costs tens of ms to import: paid when the first tool is defined, not by `import mooring`.
        import pydantic

        self._context_param: str | None = None
        fields: dict[str, Any] = {}
        for pname, param in inspect.signature(func).parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise ToolError(f"tool {self.name!r}: *args/**kwargs parameters are not supported")
            annotation = hints.get(pname, Any)
            if annotation is ToolContext:
                self._context_param = pname
                continue
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[pname] = (annotation, pydantic.Field(default, description=param_docs.get(pname)))
        self._model = pydantic.create_model(f"{self.name}_input", **fields)
        schema = self._model.model_json_schema()
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        self.input_schema: dict[str, Any] = schema
        functools.update_wrapper(self, func)

    @property
    def spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "inputSchema": {"json": self.input_schema},
        }

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    async def invoke(self, tool_use_id: str, tool_input: Any, context: ToolContext) -> ToolResult:
        """Validate the input, run the function and wrap what it returned (or raised)."""
        import pydantic

        try:
            validated = self._model.model_validate(tool_input if tool_input is not None else {})
        except pydantic.ValidationError as exc:
            return error_result(tool_use_id, f"invalid input for tool {self.name!r}: {exc}")
        kwargs = {name: getattr(validated, name) for name in type(validated).model_fields}
        if self._context_param:
            kwargs[self._context_param] = context
        try:
            if self.is_async:
                value = await self.func(**kwargs)
            else:
                import asyncio  # imported by the first call, as in mooring._sync

                value = await asyncio.to_thread(self.func, **kwargs)
        except Exception as exc:
            return error_result(tool_use_id, f"tool {self.name!r} failed: {type(exc).__name__}: {exc}")
        return success_result(tool_use_id, value)


def success_result(tool_use_id: str, value: Any) -> ToolResult:
    if isinstance(value, dict) and value.get("status") in ("success", "error") and "content" in value:
        return {"toolUseId": tool_use_id, "status": value["status"], "content": value["content"]}
    content: list[ToolResultContent]
    if isinstance(value, str):
        content = [{"text": value}]
    else:
        try:
            content = [{"json": json.loads(json.dumps(value))}]
        except (TypeError, ValueError):
            content = [{"text": str(value)}]
    return {"toolUseId": tool_use_id, "status": "success", "content": content}


def error_result(tool_use_id: str, text: str) -> ToolResult:
    return {"toolUseId": tool_use_id, "status": "error", "content": [{"text": text}]}


@overload
def tool(func: Callable[..., Any]) -> FunctionTool: ...


@overload
def tool(
    *, name: str | None = None, description: str | None = None
) -> Callable[[Callable[..., Any]], FunctionTool]: ...


def tool(
    func: Callable[..., Any] | None = None, *, name: str | None = None, description: str | None = None
) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
    """Turn a function into a tool; its JSON schema comes from the type hints and docstring.

    Example::

        @tool
        def add(a: int, b: int) -> int:
            '''Add two integers.

            Args:
                a: first addend
                b: second addend
            '''
            return a + b

    The decorated function stays directly callable. A parameter annotated ``ToolContext``
    receives the calling agent and the tool-use id and is left out of the schema.
    """
    if func is not None:
        return FunctionTool(func, name=name, description=description)

    def decorate(f: Callable[..., Any]) -> FunctionTool:
        return FunctionTool(f, name=name, description=description)

    return decorate


class ToolRegistry:
    """The tools one Agent can call, by name."""

    def __init__(self, tools: Any = ()) -> None:
        self._tools: dict[str, FunctionTool] = {}
        for item in tools:
            self.add(item)

    def add(self, item: Any) -> None:
        if isinstance(item, FunctionTool):
            t = item
        elif callable(item):
            t = FunctionTool(item)
        else:
            raise ToolError(f"not a tool: {item!r} (decorate a function with @tool)")
        if t.name in self._tools:
            raise ToolError(f"two tools are named {t.name!r}")
        self._tools[t.name] = t

    def get(self, name: str) -> FunctionTool | None:
        return self._tools.get(name)

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    @property
    def specs(self) -> list[dict[str, Any]]:
        return [t.spec for t in self._tools.values()]
