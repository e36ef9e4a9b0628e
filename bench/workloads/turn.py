"""Workload 3: per-turn persistence cost inside the agent loop, zero-latency model.

Each sample is a child process that, for every (history length, conversation manager)
config, restores a stored session and times ``agent(prompt)`` for T turns, then times the
same turns on an Agent with no session manager holding the same in-memory messages. The
overhead is median(with) - median(without). A turn is a prompt and a text reply (two
messages), so per turn mooring appends two messages and updates its agent record; Strands'
file manager writes two messages (and agent.json when it changed); the snapshot manager
(default ``save_latest_on="invocation"``) rewrites one blob holding the in-memory history.

Bytes written per turn: ``wchar`` from /proc/self/io (every write() the process made: files,
WAL, and the bytes sent to PostgreSQL, Redis or S3), and for file stores the size of every
file created or changed by the turn (temp files excluded: they are gone). For S3, the PUT
bodies and the requests, counted by botocore's before-call event.
"""

from __future__ import annotations

from typing import Any

from bench import systems
from bench.context import ChildError, Context, alternate, log, summary

NAMES = [
    "mooring-file",
    "mooring-file-none",
    "mooring-sqlite",
    "mooring-postgres",
    "mooring-redis",
    "strands-file",
    "snapshot-file",
]
S3_NAMES = ["mooring-s3", "strands-s3", "snapshot-s3"]
CMS = ["null", "window"]


def hists(ctx: Context) -> list[int]:
    return [100] if ctx.quick else [100, 2000]


def _median(values: list[float]) -> float | None:
    return summary(values)["median"]


def measure(ctx: Context, names: list[str], *, s3: bool = False) -> list[dict[str, Any]]:
    turns = 5 if ctx.quick else (15 if s3 else 30)
    warm = 1 if ctx.quick else 2
    repeats = ctx.reps(2 if s3 else 3, 1)
    names = ctx.available(names)
    collected: dict[tuple[str, int, str], dict[str, Any]] = {}
    errors: dict[str, str] = {}
    for repeat in range(repeats):
        for name in alternate(names, repeat):
            if name in errors:
                continue
            spec = ctx.store(name, f"turn-{repeat}")
            configs = [{"hist": hist, "cm": cm, "session": f"turn-{hist}-{cm}"} for hist in hists(ctx) for cm in CMS]
            if systems.SYSTEMS[name].backend == "s3":
                # Seeded here, so the child's S3 traffic is only the turns themselves.
                try:
                    ctx.seed_many([(spec, c["session"], c["hist"], c["cm"] == "window") for c in configs])
                except Exception as exc:
                    errors[name] = f"set-up failed: {type(exc).__name__}: {str(exc)[:160]}"
                    continue
                for config in configs:
                    config["seeded"] = True
            job = {"op": "turn", "store": spec, "configs": configs, "turns": turns, "warm": warm}
            try:
                result = ctx.run_child(job, timeout=900)
            except ChildError as exc:
                errors[name] = str(exc)
                continue
            for item in result["results"]:
                entry = collected.setdefault((name, item["hist"], item["cm"]), {"overhead": [], "runs": []})
                with_session = _median(item["persisted"]["seconds"])
                without = _median(item["baseline"]["seconds"])
                if with_session is not None and without is not None:
                    entry["overhead"].append(with_session - without)
                entry["runs"].append(item)
        log(f"  turn repeat {repeat + 1}/{repeats} done at {ctx.elapsed():.0f}s")
    return [
        _row(name, hist, cm, collected.get((name, hist, cm)), errors)
        for name in names
        for hist in hists(ctx)
        for cm in CMS
    ]


def _row(name: str, hist: int, cm: str, entry: dict[str, Any] | None, errors: dict[str, str]) -> dict[str, Any]:
    """One (system, history, conversation manager) row from the samples of every repeat."""
    row: dict[str, Any] = {"system": name, "hist": hist, "cm": cm}
    if entry is None:
        row["error"] = errors.get(name, "not measured")
        return row
    runs = entry["runs"]
    persisted = [v for run in runs for v in run["persisted"]["seconds"]]
    baseline = [v for run in runs for v in run["baseline"]["seconds"]]
    row["overhead_ms"] = summary(entry["overhead"], 1e3)
    row["with_ms"] = summary(persisted, 1e3)
    row["without_ms"] = summary(baseline, 1e3)
    row["held"] = runs[-1]["held"]
    if systems.SYSTEMS[name].backend in ("file", "sqlite"):
        # Bytes sent to a server go through send(), which /proc/self/io does not count.
        row["wchar"] = summary([v for run in runs for v in run["persisted"]["wchar"]])
    stored = [v for run in runs for v in run["persisted"].get("stored_bytes", [])]
    if stored:
        row["stored_bytes"] = summary(stored)
    puts = [v for run in runs for v in run["persisted"].get("put_bytes", [])]
    if puts:
        row["put_bytes"] = summary(puts)
        per_turn = [req for run in runs for req in run["persisted"]["requests"]]
        ops = sorted({op for req in per_turn for op in req})
        row["requests_per_turn"] = {op: summary([req.get(op, 0) for req in per_turn])["median"] for op in ops}
    return row


def run(ctx: Context) -> dict[str, Any]:
    rows = measure(ctx, NAMES)
    return {
        "rows": rows,
        "hists": hists(ctx),
        "notes": [
            "overhead = median time per turn with the session manager - median without one (same process, "
            "same in-memory messages), ms; the spread is across repeats (each a fresh process).",
            "A turn = one prompt + one text reply. 'window' = SlidingWindowConversationManager(40) (the "
            "default of both SDKs), 'null' = NullConversationManager (the whole history in memory).",
            "bytes/turn: 'stored' = sizes of files created or rewritten by the turn; 'write()' = all bytes the "
            "process wrote (files incl. temp files and WAL, or the bytes sent to the server).",
            "Strands FileSessionManager does not fsync; mooring durability=none is the like-for-like row.",
        ],
    }
