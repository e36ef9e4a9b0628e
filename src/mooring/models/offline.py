"""The ``offline`` model: deterministic, no network, and honest about being a stand-in.

It answers from the conversation it is given, so that memory is visible: asked "What did I
just ask you?" it quotes the previous user question. When the prompt names one of the
agent's tools it calls that tool, with arguments taken from the prompt. A forced tool choice
(structured output) is obeyed: it calls that tool with input built from the tool's JSON
schema (numbers and quoted strings from the prompt, else placeholders), which validates for
the common pydantic models (scalars, enums, nested models, lists, optionals); a schema with
constraints it cannot guess (patterns, minimum lengths) may not.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

from mooring.models.base import message_to_events
from mooring.types import Message, StreamEvent, ToolUse, text_of, tool_result_ids

PREFIX = "[offline model] "

_FACTS = {
    "capital of france": "The capital of France is Paris.",
    "capital of germany": "The capital of Germany is Berlin.",
    "capital of japan": "The capital of Japan is Tokyo.",
    "capital of italy": "The capital of Italy is Rome.",
    "capital of spain": "The capital of Spain is Madrid.",
}

_MEMORY_QUESTIONS = re.compile(
    r"\bwhat did i (just |previously |last )?(ask|say)\b|\bmy (last|previous) question\b", re.I
)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


class OfflineModel:
    """A deterministic stand-in model for demos and tests (``model="offline"``)."""

    def __init__(self, chunk_size: int = 8) -> None:
        self.chunk_size = chunk_size
        self._ids = itertools.count(1)

    async def stream(
        self,
        messages: Sequence[Message],
        tool_specs: Sequence[dict[str, Any]] | None = None,
        system_prompt: str | None = None,
        *,
        tool_choice: dict[str, Any] | None = None,
    ) -> AsyncIterator[StreamEvent]:
        forced = (tool_choice or {}).get("tool", {}).get("name")
        spec = next((s for s in tool_specs or [] if s["name"] == forced), None)
        if spec is not None:
            reply = self._forced_call(list(messages), spec)
        else:
            reply = self._reply(list(messages), list(tool_specs or []))
        # Counted like a provider would: everything sent (tool results, specs, system prompt).
        prompt_chars = len(json.dumps([list(messages), list(tool_specs or []), system_prompt], default=str))
        out_chars = len(str(reply))
        usage = {"inputTokens": prompt_chars // 4, "outputTokens": out_chars // 4}
        usage["totalTokens"] = usage["inputTokens"] + usage["outputTokens"]
        for event in message_to_events(reply, usage=usage, chunk_size=self.chunk_size):
            yield event

    def _forced_call(self, messages: list[Message], spec: dict[str, Any]) -> Message:
        prompts = [m for m in messages if m["role"] == "user" and not tool_result_ids(m) and text_of(m)]
        prompt = text_of(prompts[-1]) if prompts else ""
        schema = spec.get("inputSchema", {}).get("json", {})
        filler = _Filler(prompt, schema.get("$defs", {}))
        use: ToolUse = {"toolUseId": f"offline-{next(self._ids)}", "name": spec["name"], "input": filler.value(schema)}
        return {"role": "assistant", "content": [{"toolUse": use}]}

    def _reply(self, messages: list[Message], tool_specs: list[dict[str, Any]]) -> Message:
        last = messages[-1] if messages else None
        if last is not None and tool_result_ids(last):
            return _text(PREFIX + _summarize_results(last))
        prompts = [m for m in messages if m["role"] == "user" and not tool_result_ids(m) and text_of(m)]
        prompt = text_of(last) if last is not None else ""
        if _MEMORY_QUESTIONS.search(prompt):
            earlier = prompts[:-1]
            if not earlier:
                return _text(PREFIX + "You have not asked me anything before this.")
            return _text(PREFIX + f'You asked: "{text_of(earlier[-1])}"')
        for spec in tool_specs:
            if _mentions(prompt, spec["name"]):
                tool_input = _arguments(prompt, spec)
                return {
                    "role": "assistant",
                    "content": [
                        {"text": PREFIX + f"Calling {spec['name']}."},
                        {
                            "toolUse": {
                                "toolUseId": f"offline-{next(self._ids)}",
                                "name": spec["name"],
                                "input": tool_input,
                            }
                        },
                    ],
                }
        lowered = prompt.lower()
        for key, answer in _FACTS.items():
            if key in lowered:
                return _text(PREFIX + answer)
        if re.search(r"\bhow many messages\b", lowered):
            return _text(PREFIX + f"This conversation holds {len(messages)} messages, this one included.")
        turn = len(prompts)
        return _text(
            PREFIX + f'I received "{prompt}" (message {len(messages)}, your prompt number {turn}). '
            "I am an offline stand-in: set MOORING_MODEL or pass model=... for real answers."
        )


def _text(text: str) -> Message:
    return {"role": "assistant", "content": [{"text": text}]}


def _mentions(prompt: str, tool_name: str) -> bool:
    words = re.escape(tool_name).replace("_", "[_ ]")
    return re.search(rf"\b{words}\b", prompt, re.I) is not None


def _arguments(prompt: str, spec: dict[str, Any]) -> dict[str, Any]:
    schema = spec.get("inputSchema", {}).get("json", {})
    properties: dict[str, Any] = schema.get("properties", {})
    numbers = _NUMBER.findall(prompt)
    quoted = re.findall(r'"([^"]*)"', prompt)
    args: dict[str, Any] = {}
    for name, prop in properties.items():
        kind = prop.get("type")
        if kind in ("integer", "number") and numbers:
            raw = numbers.pop(0)
            args[name] = int(float(raw)) if kind == "integer" else float(raw)
        elif kind == "string":
            args[name] = quoted.pop(0) if quoted else prompt
    return args


class _Filler:
    """A value for a JSON schema, taking numbers and quoted strings from the prompt in order."""

    def __init__(self, prompt: str, defs: dict[str, Any]) -> None:
        self.numbers = _NUMBER.findall(prompt)
        self.quoted = re.findall(r'"([^"]*)"', prompt)
        self.prompt = prompt
        self.defs = defs

    def value(self, schema: dict[str, Any], depth: int = 0) -> Any:
        if depth > 8:
            return None
        if "$ref" in schema:
            return self.value(self.defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), depth + 1)
        if "default" in schema:
            return schema["default"]
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return schema["enum"][0]
        for key in ("anyOf", "oneOf", "allOf"):
            options = [o for o in schema.get(key, []) if o.get("type") != "null"]
            if options:
                return self.value(options[0], depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), None)
        if kind == "object" or "properties" in schema:
            properties: dict[str, Any] = schema.get("properties", {})
            return {name: self.value(prop, depth + 1) for name, prop in properties.items()}
        if kind == "array":
            return []
        if kind in ("integer", "number"):
            raw = self.numbers.pop(0) if self.numbers else "0"
            return int(float(raw)) if kind == "integer" else float(raw)
        if kind == "boolean":
            return False
        if kind == "string":
            return self.quoted.pop(0) if self.quoted else self.prompt
        return None


def _summarize_results(message: Message) -> str:
    parts = []
    for block in message["content"]:
        result = block.get("toolResult")
        if not result:
            continue
        pieces = []
        for item in result["content"]:
            if "text" in item:
                pieces.append(item["text"])
            elif "json" in item:
                pieces.append(str(item["json"]))
        joined = " ".join(pieces)
        if result["status"] == "error":
            parts.append(f"The tool reported an error: {joined}")
        else:
            parts.append(f"The tool returned: {joined}")
    return " ".join(parts)
