"""Token budgets: how big the model's context is, and tool results cut down to fit it.

No tokenizer is downloaded or run. The size of a context is the provider's own count of the
input tokens of the last model call, plus an estimate for the messages added since, made
from their length in characters:

=============================  ======================
model                          characters per token
=============================  ======================
``AnthropicModel``             3.5
``BedrockModel``               3.5
``OpenAIModel``                4.0
anything else                  4.0
=============================  ======================

A model may carry its own ``chars_per_token`` attribute, which wins. The characters counted
are those of each message (role and content) as compact JSON, so block structure is counted
too, and the conversation managers add a 10% margin to every estimated count: the estimate
errs on the large side for plain prose, which is the safe side for a budget.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from mooring.types import ContentBlock, Message

#: Characters per token by provider module (``mooring.models.<name>``).
CHARS_PER_TOKEN: dict[str, float] = {"anthropic": 3.5, "bedrock": 3.5, "openai": 4.0}
DEFAULT_CHARS_PER_TOKEN = 4.0

#: Text put in place of the part of a tool result the model is not shown.
TRUNCATION_MARKER = (
    "[mooring: tool result truncated in the model's context: showing {kept} of {total} characters; "
    "the stored session keeps the whole result]"
)


def chars_per_token(model: Any) -> float:
    """The characters-per-token estimate for ``model`` (see the table above)."""
    own = getattr(model, "chars_per_token", None)
    if isinstance(own, (int, float)) and own > 0:
        return float(own)
    module = type(model).__module__
    if module.startswith("mooring.models."):
        return CHARS_PER_TOKEN.get(module.rsplit(".", 1)[-1], DEFAULT_CHARS_PER_TOKEN)
    return DEFAULT_CHARS_PER_TOKEN


def _chars(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str))


def message_chars(message: Message) -> int:
    """The length of a message (role and content) as compact JSON."""
    return _chars({"role": message["role"], "content": message.get("content", [])})


def estimate_tokens(chars: int, per_token: float) -> int:
    return math.ceil(chars / per_token)


def fixed_chars(system_prompt: str | None, tool_specs: Sequence[dict[str, Any]]) -> int:
    """Characters of what every call sends besides the messages (system prompt, tool specs)."""
    return len(system_prompt or "") + (_chars(list(tool_specs)) if tool_specs else 0)


def cap_tool_results(messages: Sequence[Message], cap_chars: int) -> list[Message]:
    """``messages`` with every tool result longer than ``cap_chars`` cut down, with a marker.

    Messages without an oversized result are the same objects; a changed one is a new dict,
    so the agent's own history (what the session stores) keeps every result whole.
    """
    out: list[Message] = []
    for message in messages:
        content = message.get("content", [])
        if message["role"] != "user" or not any("toolResult" in block for block in content):
            out.append(message)
            continue
        changed = False
        blocks: list[ContentBlock] = []
        for block in content:
            result = block.get("toolResult")
            if result is None or _chars(result.get("content", [])) <= cap_chars:
                blocks.append(block)
                continue
            changed = True
            blocks.append({"toolResult": {**result, "content": [{"text": _cut(result.get("content", []), cap_chars)}]}})
        if changed:
            new: Message = {"role": message["role"], "content": blocks}
            out.append(new)
        else:
            out.append(message)
    return out


def _cut(content: list[Any], cap_chars: int) -> str:
    parts: list[str] = []
    for item in content:
        if "text" in item:
            parts.append(str(item["text"]))
        elif "json" in item:
            parts.append(json.dumps(item["json"], ensure_ascii=False))
        else:
            parts.append(f"[{next(iter(item), 'block')} omitted]")
    text = "\n".join(parts)
    marker = TRUNCATION_MARKER.format(kept="{kept}", total=len(text))
    kept = max(0, cap_chars - len(marker) - 8)
    return text[:kept] + "\n" + marker.format(kept=kept)
