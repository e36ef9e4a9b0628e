"""Workload 5: same-session concurrency, 8 processes x 25 tool turns on one session.

Every worker runs turns tagged ``w<i>-t<k>``; each turn is prompt, ``bump`` toolUse, its
toolResult, reply ``done: <tag>``, and the tool increments a shared ``counter`` and the
worker's own state key. Workers are forked from the bench's fork server after the session
exists, restore it, then start together; the wall time runs from the start signal to the
last exit. NullConversationManager everywhere, so a snapshot holds the whole history too.

Read back as stored (nothing repaired), the session is checked for:
lost turns (a tag whose prompt is not stored), duplicated turns, misordered turns (a prompt
not followed by its own toolUse, toolResult and reply, or a worker's turns out of order),
lost state updates (increments missing from the shared counter, and from the per-worker
keys), and workers that failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import systems
from bench.context import REPO_ROOT, Context, log
from bench.zygote import Zygote

NAMES = [
    "mooring-file",
    "mooring-sqlite",
    "mooring-postgres",
    "mooring-redis",
    "mooring-s3",
    "strands-file",
    "snapshot-file",
]


def _turn_ok(tag: str, rest: list[dict[str, Any]]) -> bool:
    if len(rest) < 3 or [m["role"] for m in rest[:3]] != ["assistant", "user", "assistant"]:
        return False
    use, result, reply = (m["content"][0] for m in rest[:3])
    return bool(
        use.get("toolUse", {}).get("input", {}).get("tag") == tag
        and result.get("toolResult", {}).get("content", [{}])[0].get("text") == tag
        and reply.get("text") == f"done: {tag}"
    )


def check(messages: list[dict[str, Any]], state: dict[str, Any], workers: int, turns: int) -> dict[str, Any]:
    """Count what a reader of the stored session would find wrong."""
    seen: dict[str, int] = {}
    misordered = 0
    last_turn: dict[str, int] = {}
    for i, message in enumerate(messages):
        first = message["content"][0] if message.get("content") else {}
        if message["role"] != "user" or "text" not in first:
            continue
        tag = first["text"]
        seen[tag] = seen.get(tag, 0) + 1
        worker, _, number = tag.partition("-t")
        if not _turn_ok(tag, messages[i + 1 : i + 4]):
            misordered += 1
        elif number.isdigit():
            if int(number) < last_turn.get(worker, -1):
                misordered += 1
            last_turn[worker] = int(number)
    expected = {f"w{w}-t{t}" for w in range(workers) for t in range(turns)}
    total = workers * turns
    counter = state.get("counter")
    per_worker = [v for k, v in state.items() if k.startswith("p") and isinstance(v, int)]
    return {
        "messages": len(messages),
        "expected_messages": 4 * total,
        "lost_turns": len(expected - set(seen)),
        "duplicated_turns": sum(1 for n in seen.values() if n > 1),
        "misordered_turns": misordered,
        "counter": counter,
        "lost_state_updates": total - (counter if isinstance(counter, int) else 0),
        "lost_worker_key_updates": total - sum(per_worker),
    }


def run(ctx: Context) -> dict[str, Any]:
    workers, turns = (4, 5) if ctx.quick else (8, 25)
    repeats = ctx.reps(1, 1)
    names = ctx.available(NAMES)
    rows = []
    zygote = Zygote(ctx.child_env(), REPO_ROOT)
    try:
        for name in names:
            for repeat in range(repeats):
                spec = ctx.store(name, f"concurrency-{repeat}")
                session = f"concurrent-{repeat}"
                stderr_dir = Path(ctx.root, "stderr", f"concurrency-{name}-{repeat}")
                stderr_dir.mkdir(parents=True, exist_ok=True)
                cmd = {
                    "op": "concurrency",
                    "store": spec,
                    "session": session,
                    "family": systems.SYSTEMS[name].family,
                    "workers": workers,
                    "turns": turns,
                    "stderr_dir": str(stderr_dir),
                }
                result = zygote.call(cmd)
                row: dict[str, Any] = {"system": name, "repeat": repeat, "workers": workers, "turns": turns}
                if "error" in result:
                    row["error"] = result["error"]
                    rows.append(row)
                    continue
                row["wall_s"] = result["wall"]
                row["failed_workers"] = len(result["failures"])
                row["failures"] = result["failures"][:3]
                try:
                    messages, state = systems.read_back(spec, session)
                    row.update(check(messages, state, workers, turns))
                except Exception as exc:
                    row["error"] = f"stored session unreadable: {type(exc).__name__}: {str(exc)[:160]}"
                rows.append(row)
                log(f"  {name}: {row.get('lost_turns', '?')} turns lost, {row.get('wall_s', 0):.1f}s")
    finally:
        zygote.close()
    return {
        "rows": rows,
        "workers": workers,
        "turns": turns,
        "notes": [
            f"{workers} processes x {turns} tool turns on one session (4 messages per turn); "
            "wall = start signal to last exit, s.",
            "lost state updates = increments missing from the shared counter; worker keys = from the per-process keys.",
            "Strands' managers take no lock: concurrent invocations overwrite each other's messages "
            "(file) or whole snapshots (snapshot), and neither reports an error.",
        ],
    }
