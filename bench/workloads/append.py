"""Workload 1: latency of appending one message, with 0, 1k and 10k messages already stored.

Per system, one child process per repeat appends ``K`` messages one at a time to a stored
session of each size and reports each append's latency:

- mooring: ``SessionRepository.append_messages`` with one record (the conditional append the
  session manager makes), file backend durable (fsync) and ``durability="none"``, plus the
  other backends available;
- Strands ``FileSessionManager.create_message`` (what its manager does per message; no fsync);
- Strands ``SnapshotSessionManager.save_snapshot(is_latest=True)`` after adding the message to
  the agent: what ``save_latest_on="message"`` does per message (it rewrites the whole history);
- the raw floor, in the same run and file system: write + fsync + link + unlink of the temp
  name + directory fsync of a file the size of mooring's record, with the directory already
  open, from Python, no JSON.

Stores of 1k and 10k are seeded once; each repeat appends K more (so "10k" is 10,000 to
10,000 + K x repeats). The size-0 case uses a new session per repeat.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import systems
from bench.context import ChildError, Context, alternate, log, summary

NAMES = [
    "floor",
    "mooring-file",
    "mooring-file-none",
    "mooring-sqlite",
    "mooring-postgres",
    "mooring-redis",
    "strands-file",
    "snapshot-file-msg",
]


def _setup_failed(exc: Exception) -> str:
    return f"set-up failed: {type(exc).__name__}: {str(exc)[:160]}"


def _seed_stores(
    ctx: Context, names: list[str], sizes: list[int]
) -> tuple[dict[tuple[str, int], dict[str, Any]], dict[str, str]]:
    """Seed each system's stores of 1k and 10k messages once; a system that fails is set aside."""
    errors: dict[str, str] = {}
    specs: dict[tuple[str, int], dict[str, Any]] = {}
    for name in names:
        for size in sizes:
            if size == 0:
                continue
            spec = ctx.store(name, f"append-{size}")
            try:
                systems.seed(spec, f"append-{size}", size, window=False)
            except Exception as exc:
                errors[name] = _setup_failed(exc)
            specs[(name, size)] = spec
    return specs, errors


def _child_sessions(
    ctx: Context,
    name: str,
    sizes: list[int],
    specs: dict[tuple[str, int], dict[str, Any]],
    repeat: int,
    head: int,
    errors: dict[str, str],
) -> list[dict[str, Any]] | None:
    """What one child appends to, per size (the size-0 store is a new one each repeat); None
    when that store could not be set up (the reason is in ``errors``)."""
    items: list[dict[str, Any]] = []
    for size in sizes:
        if name == "floor":
            directory = Path(ctx.root, "floor", str(size))
            items.append({"existing": size, "dir": str(directory), "head": size + head})
            continue
        if size == 0:
            spec, session = ctx.store(name, f"append-0-{repeat}"), "append-0"
            try:
                systems.seed(spec, session, 0, window=False)
            except Exception as exc:
                errors[name] = _setup_failed(exc)
                return None
        else:
            spec, session = specs[(name, size)], f"append-{size}"
        items.append({"existing": size, "store": spec, "session": session})
    return items


def run(ctx: Context) -> dict[str, Any]:
    sizes = [0, 1000] if ctx.quick else [0, 1000, 10000]
    count = 5 if ctx.quick else 40
    repeats = ctx.reps(3, 1)
    names = ["floor", *ctx.available(NAMES[1:])]
    samples: dict[tuple[str, int], list[float]] = {(n, s): [] for n in names for s in sizes}
    specs, errors = _seed_stores(ctx, names[1:], sizes)
    for repeat in range(repeats):
        for name in alternate(names, repeat):
            if name in errors:
                continue
            items = _child_sessions(ctx, name, sizes, specs, repeat, repeat * count, errors)
            if items is None:
                continue
            try:
                result = ctx.run_child({"op": "append", "system": name, "count": count, "sessions": items})
            except ChildError as exc:
                errors[name] = str(exc)
                continue
            for item in result["results"]:
                samples[(name, item["existing"])].extend(item["seconds"])
        log(f"  append repeat {repeat + 1}/{repeats} done at {ctx.elapsed():.0f}s")
    rows = []
    for (name, size), values in samples.items():
        row: dict[str, Any] = {"system": name, "existing": size, "ms": summary(values, 1e3)}
        if name in errors:
            row["error"] = errors[name]
        rows.append(row)
    return {
        "rows": rows,
        "sizes": sizes,
        "per_repeat": count,
        "repeats": repeats,
        "notes": [
            f"Latency of one append, ms: median (q1-q3) of {count} appends x {repeats} repeat(s), "
            "each repeat in a fresh process.",
            "floor = write + fsync + link + unlink + directory fsync of an equal-sized file, same file system.",
            "Strands FileSessionManager does not fsync; compare it with mooring durability=none for like for like.",
            'Snapshot (save_latest_on="message") rewrites the whole history on every message.',
        ],
    }
