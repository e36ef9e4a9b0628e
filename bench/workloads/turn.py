"""Workload 3: per-turn persistence cost inside the agent loop, zero-latency model.

Each sample is a child process that, for every (history length, conversation manager)
config, restores a stored session and times ``agent(prompt)`` for T turns, interleaved turn
by turn (in alternating order) with the same turns on an Agent holding the same in-memory
messages and no session manager. The overhead of a repeat is the median of the per-turn
differences (with - without); rows show the median and spread of that across repeats. The
no-session turns are reported on their own too (the agent loop's cost at each history). A turn
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
                pairs = zip(item["persisted"]["seconds"], item["baseline"]["seconds"], strict=True)
                paired = _median([a - b for a, b in pairs])
                if paired is not None:
                    entry["overhead"].append(paired)
                entry["runs"].append(item)
                bare = {"system": name, "hist": item["hist"], "cm": item["cm"], "seconds": item["baseline"]["seconds"]}
                ctx.shared.setdefault("turn_bare", []).append(bare)
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


def floor(ctx: Context) -> dict[str, Any] | None:
    """The durable-turn floor (two message files written and fsynced, one directory fsync) in
    the file system of the file store; None when the file store is not available."""
    if "mooring-file" not in ctx.available(["mooring-file"]):
        return None
    samples: list[float] = []
    for repeat in range(ctx.reps(3, 1)):
        spec = ctx.store("mooring-file", f"turn-floor-{repeat}")
        try:
            result = ctx.run_child({"op": "turnfloor", "dir": spec["dir"] + "-floor", "count": 5 if ctx.quick else 30})
        except ChildError as exc:
            log(f"  turn floor: {exc}")
            return None
        samples.append(_median(result["seconds"]) or 0.0)
    return summary(samples, 1e3)


def bare_rows(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The no-session turns of every child per SDK, history and conversation manager: ``ms`` over
    the children's medians (the spread is between processes, as for the overhead), ``turns``
    over every single turn."""
    medians: dict[tuple[str, int, str], list[float]] = {}
    pooled: dict[tuple[str, int, str], list[float]] = {}
    for row in raw:
        key = (systems.SYSTEMS[row["system"]].family, row["hist"], row["cm"])
        pooled.setdefault(key, []).extend(row["seconds"])
        median = _median(row["seconds"])
        if median is not None:
            medians.setdefault(key, []).append(median)
    return [
        {"family": f, "hist": h, "cm": c, "ms": summary(medians.get((f, h, c), []), 1e3), "turns": summary(v, 1e3)}
        for (f, h, c), v in sorted(pooled.items())
    ]


def run(ctx: Context) -> dict[str, Any]:
    rows = measure(ctx, NAMES)
    raw = ctx.shared.pop("turn_bare", [])
    return {
        "rows": rows,
        "floor_ms": floor(ctx),
        "bare_rows": bare_rows(raw),
        "hists": hists(ctx),
        "notes": [
            "overhead = median of per-turn differences, a turn with the session manager minus the interleaved "
            "turn without one (same process, same in-memory messages), ms; the spread is across repeats (each "
            "a fresh process).",
            "durable-turn floor = write + fsync of two message-sized files and one directory fsync, same file "
            "system as the file store; no session = the same turn on an Agent without a session manager.",
            "A turn = one prompt + one text reply. 'window' = SlidingWindowConversationManager(40) (the "
            "default of both SDKs), 'null' = NullConversationManager (the whole history in memory).",
            "bytes/turn: 'stored' = sizes of files created or rewritten by the turn; 'write()' = all bytes the "
            "process wrote (files incl. temp files and WAL, or the bytes sent to the server).",
            "Strands FileSessionManager does not fsync; mooring durability=none is the like-for-like row.",
        ],
    }
