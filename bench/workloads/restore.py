"""Workload 2: restore time at 100, 1k and 10k stored messages, each in a fresh process.

Two stored states per size: the full history restored with ``NullConversationManager``, and
a 40-message window (``removed_message_count = N - 40``) restored with
``SlidingWindowConversationManager(40)``. The clock covers building the session manager and
the Agent (which restores); the child warms imports and a first Agent beforehand.

Stored data is written through each system's own API: mooring's ``append_messages`` in
batches (durability none for set-up speed; the bytes are the same), Strands'
``FileSessionManager.create_agent``/``create_message``, ``SnapshotSessionManager.save_snapshot``.
For Strands S3 above 100 messages, the message objects are put straight into moto's backend
in exactly the bytes ``S3SessionManager.create_message`` writes (same keys, same
``json.dumps(indent=2)`` body); agent.json and session.json still go through its API. For
mooring S3 above 100 messages, ``append_messages`` writes into an in-process moto mock and
the objects are copied byte for byte into the server (see bench/README.md).
"""

from __future__ import annotations

import time
from typing import Any

from bench import systems
from bench.context import ChildError, Context, alternate, log, summary
from bench.data import WINDOW

NAMES = [
    "mooring-file",
    "mooring-sqlite",
    "mooring-postgres",
    "mooring-redis",
    "mooring-s3",
    "strands-file",
    "strands-s3",
    "snapshot-file",
    "snapshot-s3",
]
MODES = ["full", "window"]


HUGE = 50000  # full restore only, for the linearity target
HUGE_NAMES = ("mooring-file", "mooring-sqlite")


def sizes(ctx: Context) -> list[int]:
    return [100] if ctx.quick else [100, 1000, 10000]


def _plan(ctx: Context, names: list[str], modes: list[str]) -> list[tuple[int, list[str], list[str]]]:
    """(size, systems, modes) to measure: every size for all, plus (full runs only) a 50,000-message
    full restore for the file and SQLite backends, seeded once (about 12 MB of records)."""
    plan = [(size, names, modes) for size in sizes(ctx)]
    huge_names = [n for n in names if n in HUGE_NAMES]
    if not ctx.quick and huge_names and "full" in modes:
        plan.append((HUGE, huge_names, ["full"]))
    return plan


def fixture(ctx: Context, name: str, size: int, mode: str) -> tuple[dict[str, Any], str] | str:
    """The stored session for (system, size, mode), built once per run; or an error string."""
    cache: dict[tuple[str, int, str], Any] = ctx.shared.setdefault("restore_fixtures", {})
    key = (name, size, mode)
    if key not in cache:
        spec = ctx.store(name, "restore")
        session_id = f"restore-{size}-{mode}"
        started = time.monotonic()
        try:
            ctx.seed(spec, session_id, size, window=mode == "window")
            cache[key] = (spec, session_id)
            log(f"  seeded {name} {size} {mode} in {time.monotonic() - started:.1f}s")
        except Exception as exc:
            cache[key] = f"set-up failed: {type(exc).__name__}: {str(exc)[:160]}"
            log(f"  {name} {size} {mode}: {cache[key]}")
    result: tuple[dict[str, Any], str] | str = cache[key]
    return result


def prepare(ctx: Context, names: list[str], size: int, modes: list[str]) -> None:
    """Seed the slow (S3) fixtures of one size together, so their writers overlap."""
    cache: dict[tuple[str, int, str], Any] = ctx.shared.setdefault("restore_fixtures", {})
    todo = [(n, m) for n in names for m in modes if systems.SYSTEMS[n].backend == "s3" and (n, size, m) not in cache]
    if not todo:
        return
    items = [(ctx.store(n, "restore"), f"restore-{size}-{m}", size, m == "window") for n, m in todo]
    started = time.monotonic()
    try:
        ctx.seed_many(items)
    except Exception as exc:
        for n, m in todo:
            cache[(n, size, m)] = f"set-up failed: {type(exc).__name__}: {str(exc)[:160]}"
        return
    for (n, m), (spec, session_id, _, _) in zip(todo, items, strict=True):
        cache[(n, size, m)] = (spec, session_id)
    log(f"  seeded S3 stores of {size} in {time.monotonic() - started:.1f}s")


def repeats_for(ctx: Context, name: str, size: int, mode: str) -> int:
    # A full 10k restore from moto is 10,000 GETs through one HTTP server on two cores
    # (tens of seconds); one sample each keeps `make bench` inside its time budget.
    if systems.SYSTEMS[name].backend == "s3" and size >= 10000 and mode == "full":
        return 1 if ctx.repeats is None else min(ctx.repeats, 1)
    return ctx.reps(3, 1)


def measure(ctx: Context, names: list[str], modes: list[str]) -> list[dict[str, Any]]:
    """Rows of restore measurements for the available ``names`` (alternating per repeat)."""
    rows: dict[tuple[str, int, str], dict[str, Any]] = {}
    plan = _plan(ctx, ctx.available(names), modes)
    for size, names, modes in plan:
        prepare(ctx, names, size, modes)
        for mode in modes:
            for name in names:
                rows[(name, size, mode)] = {"system": name, "size": size, "mode": mode, "samples": [], "requests": None}
            most = max((repeats_for(ctx, n, size, mode) for n in names), default=0)
            for repeat in range(most):
                for name in alternate(names, repeat):
                    row = rows[(name, size, mode)]
                    if repeat >= repeats_for(ctx, name, size, mode) or row.get("error"):
                        continue
                    found = fixture(ctx, name, size, mode)
                    if isinstance(found, str):
                        row["error"] = found
                        continue
                    spec, session_id = found
                    cm = "window" if mode == "window" else "null"
                    job = {"op": "restore", "store": spec, "session": session_id, "cm": cm}
                    try:
                        result = ctx.run_child(job)
                    except ChildError as exc:
                        row["error"] = str(exc)
                        continue
                    row["samples"].append(result["seconds"])
                    row["messages"] = result["messages"]
                    if "requests" in result:
                        row["requests"] = result["requests"]
            log(f"  restore {size} {mode} done at {ctx.elapsed():.0f}s")
    out = []
    for row in rows.values():
        expected = row["size"] if row["mode"] == "full" else min(WINDOW, row["size"])
        if "messages" in row and row["messages"] != expected and not row.get("error"):
            row["error"] = f"restored {row['messages']} messages, expected {expected}"
        row["ms"] = summary(row.pop("samples"), 1e3)
        row["like_for_like"] = not (row["system"].startswith("snapshot") and row["mode"] == "window")
        out.append(row)
    return out


def run(ctx: Context) -> dict[str, Any]:
    rows = measure(ctx, NAMES, MODES)
    ctx.shared["restore_rows"] = rows
    return {
        "rows": rows,
        "sizes": sorted({row["size"] for row in rows}),
        "notes": [
            "50,000 stored: the full restore of mooring's file and SQLite backends only (the linearity target); "
            "not in --quick.",
            "Time to build the session manager and the Agent (the restore), in a fresh process per sample; ms.",
            "Snapshot rows with a window are not like for like: the snapshot stores only the 40-message window "
            "(the trimmed history is gone), while mooring and Strands' repository managers keep every message.",
            "S3 stores above 100 messages were loaded into moto directly: Strands' in exactly "
            "S3SessionManager's keys and bytes, mooring's as written by its append_messages into an in-process "
            "moto mock; everything else went through each system's own API (see bench/README.md).",
            "Full 10k restores from S3 have one sample each (10,000 GETs through moto take tens of seconds).",
            "The page cache is warm for every system alike (the data was just written); no caches are dropped.",
        ],
    }
