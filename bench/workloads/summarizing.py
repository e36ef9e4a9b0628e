"""Workload 8: restoring a summarized session stays flat as the conversation grows.

A mooring Agent with ``SummarizingConversationManager(max_context_tokens=3000)`` runs 100 and
2,000 tool turns (four messages each: prompt, toolUse, toolResult, answer; every seventh
tool result is 20,000 characters) against a zero-latency model that is a function of its
input (it answers summarization requests with a one-line summary). The session is on the
file backend (durability none for set-up speed; the bytes are the same). Each sample is a
fresh process (``python -m bench.worker``) that warms imports and a throwaway Agent, then
times building the Agent that restores the session, and counts the bytes its process read
meanwhile (``rchar`` in ``/proc/self/io``), next to the size of the whole stored history.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from bench.context import ChildError, Context, log, summary

SESSION = "summarized"
BUDGET = 3000
SUMMARY_PROMPT_MARK = "Summarize the conversation so far"


def sizes(ctx: Context) -> list[int]:
    return [100, 400] if ctx.quick else [100, 2000]


def _respond(messages: list[Any], specs: list[Any], system: str | None) -> dict[str, Any]:
    from mooring.models.base import message_to_events

    last = messages[-1]["content"][0]
    if "text" in last and last["text"].startswith(SUMMARY_PROMPT_MARK):
        reply: list[Any] = [{"text": f"Summary of {len(messages) - 1} messages."}]
    elif "toolResult" in last:
        reply = [{"text": f"answered {last['toolResult']['toolUseId']}"}]
    else:
        number = int(last.get("text", "turn 0").rsplit(" ", 1)[-1])
        reply = [{"toolUse": {"toolUseId": f"t{number}-{len(messages)}", "name": "lookup", "input": {"n": number}}}]
    tokens = math.ceil((len(json.dumps(messages)) + len(json.dumps(specs)) + len(system or "")) / 4)
    usage = {"inputTokens": tokens, "outputTokens": 5, "totalTokens": tokens + 5}
    return {"events": message_to_events({"role": "assistant", "content": reply}, usage=usage)}


def build_agent(storage: str, *, durability: Any = "fsync") -> Any:
    """The measured Agent: on ``storage``, with the summarizing manager."""
    from mooring import Agent, SummarizingConversationManager, tool
    from mooring.models import ScriptedModel
    from mooring.session import FileSessionManager

    @tool
    def lookup(n: int) -> str:
        """Look a number up."""
        size = 20_000 if n % 7 == 3 else 300
        return (f"record {n}: " + "abcdefghij" * (size // 10))[:size]

    manager = SummarizingConversationManager(max_context_tokens=BUDGET, preserve_recent_messages=6)
    return Agent(
        model=ScriptedModel([_respond], repeat_last=True),
        agent_id="assistant",
        tools=[lookup],
        conversation_manager=manager,
        session_manager=FileSessionManager(session_id=SESSION, storage_dir=storage, durability=durability),
        callback_handler=None,
    )


def _rchar() -> int:
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    return 0


def job(job: dict[str, Any]) -> dict[str, Any]:
    """The child's side: warm up, then time one restore and count the bytes it read."""
    import gc
    import tempfile

    with tempfile.TemporaryDirectory() as warm:
        build_agent(warm, durability="none")("turn 1")
    gc.collect()
    before = _rchar()
    started = time.perf_counter()
    agent = build_agent(job["storage"])
    seconds = time.perf_counter() - started
    read = _rchar() - before
    return {"seconds": seconds, "bytes_read": read, "window": len(agent.messages)}


def _seed(storage: Path, turns: int) -> dict[str, Any]:
    agent = build_agent(str(storage), durability="none")
    for turn in range(turns):
        agent(f"turn {turn}")
    messages = storage / f"session_{SESSION}" / "agents" / "agent_assistant" / "messages"
    stored = [p for p in messages.iterdir() if p.name.startswith("message_")]
    return {
        "stored_messages": len(stored),
        "stored_bytes": sum(p.stat().st_size for p in stored),
        "removed_message_count": agent.conversation_manager.removed_message_count,
    }


def run(ctx: Context) -> dict[str, Any]:
    repeats = ctx.reps(5, 2)
    rows: list[dict[str, Any]] = []
    for turns in sizes(ctx):
        storage = ctx.root / f"summarizing-{turns}"
        os.makedirs(storage, exist_ok=True)
        started = time.monotonic()
        seeded = _seed(storage, turns)
        log(f"  seeded {turns} summarized turns in {time.monotonic() - started:.1f}s")
        for cm in ("summarizing",):
            samples: list[dict[str, Any]] = []
            row: dict[str, Any] = {"turns": turns, "manager": cm, **seeded}
            try:
                for _ in range(repeats):
                    samples.append(ctx.run_child({"op": "summarizing", "storage": str(storage), "cm": cm}))
            except ChildError as exc:
                row["error"] = str(exc)
            if samples:
                row["restore_ms"] = summary([s["seconds"] for s in samples], 1e3)
                row["bytes_read"] = summary([s["bytes_read"] for s in samples])
                row["window"] = samples[0]["window"]
            rows.append(row)
    return {
        "repeats": repeats,
        "rows": rows,
        "notes": [
            "restore_ms: building the Agent that restores the session, in a fresh process; "
            "bytes_read: rchar of that process meanwhile; window: messages the model would see",
            "stored_bytes: every message file of the session (none is deleted by summarizing)",
        ],
    }
