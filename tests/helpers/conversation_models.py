"""A deterministic tool-using model for conversation-manager tests: a function of its input.

Each prompt ``turn N`` gets a ``lookup`` tool call with id ``t<N>``, each tool result an
answer; a summarization request (recognised by its system prompt) gets a summary that names
the prompts it covered. Every reply reports input tokens the way a provider would: its own
count of what it was sent (whole messages as JSON, four characters a token), independent of
mooring's estimate.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from typing import Any

from mooring import tool
from mooring.agent.summarizing import DEFAULT_SUMMARIZATION_PROMPT
from mooring.models import ScriptedModel
from mooring.models.base import message_to_events
from mooring.models.scripted import ModelCall

SUMMARY_PREFIX = "Summary of prompts: "


def provider_tokens(messages: list[Any], tool_specs: list[Any], system_prompt: str | None) -> int:
    chars = len(json.dumps(messages)) + len(json.dumps(tool_specs)) + len(system_prompt or "")
    return math.ceil(chars / 4)


def prompts_in(messages: list[Any], *, summaries: bool = True) -> list[str]:
    """The ``turn N`` prompts in ``messages``; an earlier summary counts as its first and last."""
    found: list[str] = []
    for message in messages:
        for block in message["content"]:
            text = block.get("text", "")
            if text.startswith(SUMMARY_PREFIX):
                if summaries:
                    found.extend(text[len(SUMMARY_PREFIX) :].split(" to "))
            elif message["role"] == "user" and re.fullmatch(r"(p\d+-)?turn \d+", text):
                found.append(text)
    return found


def respond(
    messages: list[Any],
    tool_specs: list[Any],
    system_prompt: str | None,
    *,
    on_summary: Callable[[list[Any]], None] | None = None,
) -> dict[str, Any]:
    if system_prompt == DEFAULT_SUMMARIZATION_PROMPT:
        covered = messages[:-1]
        if on_summary is not None:
            on_summary(covered)
        prompts = prompts_in(covered)
        reply: list[Any] = [{"text": f"{SUMMARY_PREFIX}{prompts[0]} to {prompts[-1]}"}]
    else:
        last = messages[-1]
        block = last["content"][0]
        if "toolResult" in block:
            reply = [{"text": f"answered {block['toolResult']['toolUseId']}"}]
        else:
            number = block.get("text", "turn 0").rsplit(" ", 1)[-1]
            use = {"toolUseId": f"t{number}-{len(messages)}", "name": "lookup", "input": {"n": int(number)}}
            reply = [{"toolUse": use}]
    usage = {"inputTokens": provider_tokens(messages, tool_specs, system_prompt), "outputTokens": 5}
    usage["totalTokens"] = usage["inputTokens"] + 5
    return {"events": message_to_events({"role": "assistant", "content": reply}, usage=usage)}


def tool_model(**options: Any) -> ScriptedModel:
    return ScriptedModel([lambda m, s, p: respond(m, s, p, **options)], repeat_last=True)


@tool
def lookup(n: int) -> str:
    """Look a number up (every 7th answer is very long)."""
    size = 20_000 if n % 7 == 3 else 300
    return (f"record {n}: " + "abcdefghij" * (size // 10))[:size]


def call_hash(call: ModelCall) -> str:
    body = json.dumps([call.messages, call.tool_specs, call.system_prompt], sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()
