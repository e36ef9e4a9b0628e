"""The performance targets, each a ratio read against numbers of the same run.

Every verdict is "met", "missed" (by how much, with the likely reason and what would close
it), "n/a" (the rows it needs were not measured in this run) or "n/a (noise)": the baseline
a ratio would divide by is negative, or inside its own noise (its min–max spread across
repeats straddles 0, or is wider than its median), so no ratio against it means anything.
"Flat" means the value at the larger history is at most 1.3x the value at the smaller one,
or within 0.5 ms / 200 bytes of it, since a difference of two small medians is noisy.
"""

from __future__ import annotations

from typing import Any

FLAT = 1.3
BIG = 10000  # the largest history every workload measures
HUGE = 50000  # the full restore measured for the linearity target (file and SQLite only)
NOISE = "n/a (noise)"

# Likely reason and what would close the gap, shown when a target is missed.
REASONS = {
    "turn-vs-strands": "per turn mooring takes the lease (a flock on the session's lock file), re-reads the "
    "head and the agent record, and appends the prompt and the reply in one batch (a write and fsync per "
    "message file, one directory fsync; the agent record is rewritten only every 24 messages of plain turns); "
    "Strands writes its message files without any fsync, so the fsyncs alone can exceed its whole "
    "overhead; the durability=none row is the like-for-like comparison",
    "turn-floor": "a plain turn makes exactly the floor's fsyncs; the rest is the Python work of the lease, "
    "the catch-up read of the head and the agent record, the temp-file-and-link publication and JSON "
    "encoding, plus the agent record's durable rewrite every 24 messages",
    "turn-none": "without fsyncs the turn still takes the lease, re-reads the head and the agent record, and "
    "writes each message to a temp file and links it: more syscalls than Strands' two plain writes",
    "turn-sqlite": "per turn SQLite commits the lease row taken and released (unsynced) and the message batch "
    "in one BEGIN IMMEDIATE with its head check (synchronous=FULL, one WAL fsync); Strands' file writes are "
    "never synced",
    "turn-flat": "the values beside it locate the growth: when durability=none stays flat it is in the fsyncs "
    "(disk latency varies on a shared machine), and when the no-session turn grows as well it is in the agent "
    "loop rather than in persistence",
    "bare-turn": "the loop's only per-turn work that depends on the history is handing the model a shallow copy "
    "of the message list (O(N) pointers); the rest of any growth is the cyclic GC walking a larger heap of "
    "message dicts; a profile of the @2,000 turn would tell which",
    "full-linear": "the cyclic collector is paused while a range is decoded; what growth is left is the "
    "allocator and page faults of a larger heap in a fresh process",
    "snapshot-full": "the snapshot is one document decoded by one json.loads in C; mooring decodes every message "
    "record separately (an orjson parse and a record object each: about 1 + 1.3 us a message, plus the "
    "rows' fetch); compacting old messages into segments would close it",
    "snapshot-window": "the snapshot's window is one small file; mooring reads the agent record, probes the "
    "head and reads the 40 window messages (and keeps the whole history, which the snapshot does not)",
    "s3-window": "restore GETs the agent record, then the window object and one probe past its head; a slower "
    "restore means the window object was not trusted and the 40 messages were read one by one",
    "import": "modules imported by `import mooring` that are only needed later; `python -X importtime -c "
    "'import mooring'` names them, and deferring them to first use would close it",
    "concurrency-wall": "each turn holds the session lease for its whole persistence step, so 8 writers "
    "serialise on it and wait (polling) for each other, where Strands' writers do not coordinate at all",
    "concurrency-s3": "every lease acquire and release is a conditional PUT through moto's HTTP server, and a "
    "waiter polls the lease object while the holder's turn runs",
    "summarized-restore": "a summarized restore reads the agent record and the messages after "
    "removed_message_count; growth means the window itself grew (a larger summary or more kept messages) "
    "or messages before the offset were read",
    "concurrency": "lost or failed turns under the lease protocol are a bug: see the failures column",
}


def noisy(stats: dict[str, Any] | None) -> bool:
    """True when a baseline is negative or within its own noise (no ratio against it is meaningful)."""
    if not stats or stats.get("median") is None:
        return False
    median, low, high = stats["median"], stats.get("min"), stats.get("max")
    if median <= 0:
        return True
    if low is None or high is None or stats.get("n", 0) < 2:
        return False
    return bool(low < 0 < high or abs(median) < high - low)


def _rows(results: dict[str, Any], workload: str, key: str = "rows") -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = results.get("workloads", {}).get(workload, {}).get(key) or []
    return [r for r in rows if not r.get("error")]


def _med(stats: dict[str, Any] | None) -> float | None:
    return None if not stats else stats.get("median")


def _restore_stats(results: dict[str, Any], system: str, size: int, mode: str) -> dict[str, Any] | None:
    for row in _rows(results, "restore") + _rows(results, "s3", "restore_rows"):
        if row["system"] == system and row["size"] == size and row["mode"] == mode:
            stats: dict[str, Any] | None = row.get("ms")
            return stats
    return None


def _turn_stats(results: dict[str, Any], system: str, hist: int, cm: str, field: str = "overhead_ms") -> Any:
    for row in _rows(results, "turn") + _rows(results, "s3", "turn_rows"):
        if row["system"] == system and row["hist"] == hist and row["cm"] == cm:
            return row.get(field)
    return None


def _bare(results: dict[str, Any], family: str, hist: int, cm: str) -> dict[str, Any] | None:
    for row in _rows(results, "turn", "bare_rows"):
        if row["family"] == family and row["hist"] == hist and row["cm"] == cm:
            stats: dict[str, Any] | None = row.get("ms")
            return stats
    return None


class Verdicts:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, area: str, key: str, target: str, measured: str | None, ok: bool | None, short: str = "") -> None:
        if measured is None or ok is None:
            self.items.append({"area": area, "target": target, "measured": measured or "n/a", "status": "n/a"})
            return
        item = {"area": area, "target": target, "measured": measured, "status": "met" if ok else "missed"}
        if not ok:
            item["note"] = (short + "; " if short else "") + REASONS.get(key, "")
        self.items.append(item)

    def at_most(
        self,
        area: str,
        key: str,
        target: str,
        ours: Any,
        base: Any,
        factor: float,
        what: str,
        unit: str = "ms",
    ) -> None:
        """Target: ``ours <= factor * base``; ``base`` is a stats dict (noise-checked) or a number."""
        base_stats = base if isinstance(base, dict) else None
        ours_v = _med(ours) if isinstance(ours, dict) else ours
        base_v = _med(base_stats) if base_stats is not None else base
        if ours_v is None or base_v is None:
            self.add(area, key, target, None, None)
            return
        if noisy(base_stats) or base_v <= 0:
            self.items.append(
                {
                    "area": area,
                    "target": target,
                    "measured": f"{ours_v:,.2f} {unit} vs {what} {base_v:,.2f} {unit} (baseline {_spread(base_stats)})",
                    "status": NOISE,
                }
            )
            return
        r = ours_v / base_v
        measured = f"{ours_v:,.2f} {unit} vs {what} {base_v:,.2f} {unit}: {r:.2f}x"
        self.add(area, key, target, measured, r <= factor, f"{r:.2f}x where <= {factor:g}x is needed")


def _spread(stats: dict[str, Any] | None) -> str:
    if not stats or stats.get("min") is None:
        return "negative"
    return f"spread {stats['min']:,.2f}–{stats['max']:,.2f}"


def _flat(small: float, large: float, slack: float) -> bool:
    return large <= small * FLAT or large - small <= slack


def _turn_targets(v: Verdicts, results: dict[str, Any]) -> None:
    floor = results.get("workloads", {}).get("turn", {}).get("floor_ms")
    for hist in (100, 2000):
        ours = _turn_stats(results, "mooring-file", hist, "window")
        strands = _turn_stats(results, "strands-file", hist, "window")
        at = f"at {hist:,} (window 40)"
        v.at_most(
            "turn",
            "turn-vs-strands",
            f"durable per-turn overhead {at} <= Strands file's",
            ours,
            strands,
            1,
            "Strands file",
        )
        v.at_most(
            "turn",
            "turn-floor",
            f"durable per-turn overhead {at} <= 1.5x the durable-turn floor",
            ours,
            floor,
            1.5,
            "floor",
        )
        none = _turn_stats(results, "mooring-file-none", hist, "window")
        v.at_most(
            "turn",
            "turn-none",
            f"durability=none per-turn overhead {at} <= half of Strands file's",
            none,
            strands,
            0.5,
            "Strands file",
        )
        sqlite = _turn_stats(results, "mooring-sqlite", hist, "window")
        v.at_most(
            "turn",
            "turn-sqlite",
            f"SQLite per-turn overhead {at} <= Strands file's",
            sqlite,
            strands,
            1,
            "Strands file",
        )
    for cm in ("window", "null"):
        small, large = (_med(_turn_stats(results, "mooring-file", h, cm)) for h in (100, 2000))
        target = f"durable per-turn overhead flat from 100 to 2,000 messages ({cm})"
        if small is None or large is None:
            v.add("turn", "turn-flat", target, None, None)
            continue
        beside = []
        for other in ("mooring-file-none", "strands-file"):
            a, b = (_med(_turn_stats(results, other, h, cm)) for h in (100, 2000))
            if a is not None and b is not None:
                beside.append(f"{other}: {a:.2f} -> {b:.2f} ms")
        a, b = (_med(_bare(results, "mooring", h, cm)) for h in (100, 2000))
        if a is not None and b is not None:
            beside.append(f"no-session turn: {a:.2f} -> {b:.2f} ms")
        short = "grows" + (f" ({'; '.join(beside)})" if beside else "")
        v.add("turn", "turn-flat", target, f"{small:.2f} -> {large:.2f} ms", _flat(small, large, 0.5), short)
    v.at_most(
        "turn",
        "bare-turn",
        "agent turn without a session at 2,000 messages (null) <= 1.5x the turn at 100",
        _bare(results, "mooring", 2000, "null"),
        _bare(results, "mooring", 100, "null"),
        1.5,
        "@100",
    )


def _restore_targets(v: Verdicts, results: dict[str, Any]) -> None:
    for system in ("mooring-file", "mooring-sqlite"):
        v.at_most(
            "restore",
            "full-linear",
            f"{system.split('-')[1]} full restore: 50k time <= 5.5x the 10k time",
            _restore_stats(results, system, HUGE, "full"),
            _restore_stats(results, system, BIG, "full"),
            5.5,
            "10k",
        )
    snap = _restore_stats(results, "snapshot-file", BIG, "full")
    for system, need in (("mooring-sqlite", 2.5), ("mooring-postgres", 2.0)):
        v.at_most(
            "restore",
            "snapshot-full",
            f"{system.split('-')[1]} full restore of 10k: >= {need:g}x faster than the snapshot (time <= 1/{need:g})",
            _restore_stats(results, system, BIG, "full"),
            snap,
            1 / need,
            "snapshot",
        )
    v.at_most(
        "restore",
        "snapshot-full",
        "file full restore of 10k: >= 0.7x the snapshot's speed (time <= snapshot / 0.7)",
        _restore_stats(results, "mooring-file", BIG, "full"),
        snap,
        1 / 0.7,
        "snapshot",
    )
    for size in (100, 1000, BIG):
        v.at_most(
            "restore",
            "snapshot-window",
            f"windowed restore at {size:,} (file, fresh process): no slower than the snapshot's",
            _restore_stats(results, "mooring-file", size, "window"),
            _restore_stats(results, "snapshot-file", size, "window"),
            1,
            "snapshot",
        )


def _s3_targets(v: Verdicts, results: dict[str, Any]) -> None:
    rows = {r["size"]: r for r in _rows(results, "s3", "restore_rows") if r["system"] == "mooring-s3"}
    for size, row in sorted(rows.items()):
        v.at_most(
            "s3",
            "s3-window",
            f"S3 windowed restore at {size:,}: within 2x of the snapshot on S3",
            row.get("ms"),
            _restore_stats(results, "snapshot-s3", size, "window"),
            2,
            "snapshot-s3",
        )
    lists = sum((r.get("requests") or {}).get("ops", {}).get("ListObjectsV2", 0) for r in rows.values())
    target = "S3 windowed restore: 0 LIST requests at every history length"
    if rows:
        v.add("s3", "s3-window", target, f"{lists} LIST", lists == 0, f"{lists} LIST")
    else:
        v.add("s3", "s3-window", target, None, None)


def _import_targets(v: Verdicts, results: dict[str, Any]) -> None:
    rows = {r["case"]: r for r in results.get("workloads", {}).get("imports", {}).get("rows") or []}
    ours, theirs = (rows.get(c, {}).get("net") for c in ("mooring", "strands"))
    v.at_most(
        "imports", "import", "`import mooring` net time <= 1/8 of `import strands`", ours, theirs, 1 / 8, "strands"
    )


def _concurrency_targets(v: Verdicts, results: dict[str, Any]) -> None:
    rows = {r["system"]: r for r in _rows(results, "concurrency")}
    wall = {s: r.get("wall_s") for s, r in rows.items()}
    for system in ("mooring-file", "mooring-sqlite", "mooring-redis"):
        v.at_most(
            "concurrency",
            "concurrency-wall",
            f"8 processes x 25 turns, {system.split('-')[1]}: wall within 1.1x of Strands file's",
            wall.get(system),
            wall.get("strands-file"),
            1.1,
            "Strands file",
            "s",
        )
    v.at_most(
        "concurrency",
        "concurrency-s3",
        "8 processes x 25 turns, S3: wall within 3x of mooring file's",
        wall.get("mooring-s3"),
        wall.get("mooring-file"),
        3,
        "mooring file",
        "s",
    )
    ours = [r for s, r in rows.items() if s.startswith("mooring")]
    target = "concurrency: 0 lost on every mooring backend"
    if not ours:
        v.add("concurrency", "concurrency", target, None, None)
        return
    bad = [
        f"{r['system']}: {r['lost_turns']} lost, {r['lost_state_updates']} state, {r['failed_workers']} failed"
        for r in ours
        if r["lost_turns"] or r["lost_state_updates"] or r["failed_workers"] or r["duplicated_turns"]
    ]
    measured = "; ".join(bad) if bad else f"0 lost on {', '.join(r['system'] for r in ours)}"
    v.add("concurrency", "concurrency", target, measured, not bad)


def _summarizing_targets(v: Verdicts, results: dict[str, Any]) -> None:
    rows = {r["turns"]: r for r in _rows(results, "summarizing") if "restore_ms" in r}
    for field, what, unit, slack in (("restore_ms", "time", "ms", 0.5), ("bytes_read", "bytes read", "B", 200.0)):
        target = f"summarized restore {what} flat from 100 to 2,000 turns"
        small, large = (_med(rows[n][field]) if n in rows else None for n in (100, 2000))
        if small is None or large is None:
            v.add("summarizing", "summarized-restore", target, None, None)
            continue
        measured = f"{small:,.2f} {unit} @100 vs {large:,.2f} {unit} @2,000"
        v.add("summarizing", "summarized-restore", target, measured, _flat(small, large, slack))


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    v = Verdicts()
    _turn_targets(v, results)
    _restore_targets(v, results)
    _s3_targets(v, results)
    _import_targets(v, results)
    _concurrency_targets(v, results)
    _summarizing_targets(v, results)
    return v.items
