"""Results as markdown (one table per workload, targets first) and the target verdicts.

Ratios are mooring / best Strands for times (below 1 means mooring is faster; ``×0.10`` is
ten times faster), where "best Strands" is the fastest Strands system measured in the same
cell, so mooring is always read against the stronger of FileSessionManager and the snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bench import systems
from bench.targets import evaluate
from bench.workloads import REGISTRY

STRANDS = ["strands-file", "strands-s3", "snapshot-file", "snapshot-file-msg", "snapshot-s3"]


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    return evaluate(results)


# -- formatting --------------------------------------------------------------------------------


def num(value: float | None, digits: int | None = None) -> str:
    if value is None:
        return "n/a"
    if digits is None:
        digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2 if abs(value) >= 0.1 else 3
    return f"{value:,.{digits}f}"


def cell(stats: dict[str, Any] | None, spread: str = "minmax") -> str:
    if not stats or stats.get("median") is None:
        return "n/a"
    low, high = (stats.get("q1"), stats.get("q3")) if spread == "iqr" else (stats.get("min"), stats.get("max"))
    if low is None or high is None or stats.get("n", 0) < 2:
        return num(stats["median"])
    return f"{num(stats['median'])} ({num(low)}–{num(high)})"


def ratio(ours: float | None, best: float | None) -> str:
    if ours is None or not best:
        return ""
    return f" ×{ours / best:.2f}"


def table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return [*out, ""]


def name(system: str) -> str:
    return systems.label(system) if system in systems.SYSTEMS else system


def _median(stats: dict[str, Any] | None) -> float | None:
    return None if not stats else stats.get("median")


def _best(values: dict[str, float | None]) -> tuple[str | None, float | None]:
    present = {k: v for k, v in values.items() if v is not None and k in STRANDS}
    if not present:
        return None, None
    best = min(present, key=lambda k: present[k] or 0.0)
    return best, present[best]


def _notes(result: dict[str, Any]) -> list[str]:
    lines = [f"- {note}" for note in result.get("notes", [])]
    when = f"ran {result.get('ran_at', '?')}, took {result.get('seconds', '?')} s"
    return [*lines, f"- ({when})", ""]


def _failed(rows: list[dict[str, Any]]) -> list[str]:
    bad = {(r["system"], r.get("error")) for r in rows if r.get("error")}
    return [f"- {name(s)}: n/a: {e}" for s, e in sorted(bad)] + ([""] if bad else [])


# -- workloads ---------------------------------------------------------------------------------


def md_append(result: dict[str, Any]) -> list[str]:
    sizes = result["sizes"]
    rows = result["rows"]
    by = {(r["system"], r["existing"]): r for r in rows if not r.get("error")}
    names = list(dict.fromkeys(r["system"] for r in rows if not r.get("error")))
    body = []
    for system in names:
        line = ["raw floor (write+fsync+link+dir fsync)" if system == "floor" else name(system)]
        for size in sizes:
            stats = by.get((system, size), {}).get("ms")
            _best_name, best = _best({s: _median(by.get((s, size), {}).get("ms")) for s in names})
            extra = ratio(_median(stats), best) if system.startswith("mooring") else ""
            line.append(cell(stats, "iqr") + extra)
        body.append(line)
    header = ["system", *[f"{s:,} existing, ms" for s in sizes]]
    return [*table(header, body), *_failed(rows), *_notes(result)]


def md_restore(result: dict[str, Any]) -> list[str]:
    out: list[str] = []
    sizes = result["sizes"]
    rows = result["rows"]
    for mode, title in (("full", "Full history (NullConversationManager)"), ("window", "40-message window")):
        by = {(r["system"], r["size"]): r for r in rows if r["mode"] == mode and not r.get("error")}
        names = list(dict.fromkeys(r["system"] for r in rows if r["mode"] == mode and not r.get("error")))
        cols = [s for s in sizes if any(size == s for _, size in by)]
        body = []
        for system in names:
            mark = " †" if mode == "window" and system.startswith("snapshot") else ""
            line = [name(system) + mark]
            for size in cols:
                stats = by.get((system, size), {}).get("ms")
                _, best = _best({s: _median(by.get((s, size), {}).get("ms")) for s in names})
                extra = ratio(_median(stats), best) if system.startswith("mooring") else ""
                line.append(cell(stats) + extra)
            body.append(line)
        out += [f"**{title}** — restore time, ms, median (min–max); ×r = mooring / best Strands in the column", ""]
        out += table(["system", *[f"{s:,} stored" for s in cols]], body)
    out += ["† not like for like: the snapshot keeps only the 40-message window; the trimmed history is gone.", ""]
    return [*out, *_failed(rows), *_notes(result)]


def _bytes(stats: dict[str, Any] | None) -> str:
    value = _median(stats)
    return "n/a" if value is None else f"{value:,.0f}"


def _turn_table(rows: list[dict[str, Any]], hists: list[int], s3: bool) -> list[str]:
    good = [r for r in rows if not r.get("error")]
    by = {(r["system"], r["hist"], r["cm"]): r for r in good}
    names = list(dict.fromkeys(r["system"] for r in good))
    body = []
    for cm in ("window", "null"):
        for system in names:
            line = [name(system), "window (40)" if cm == "window" else "null"]
            for hist in hists:
                row = by.get((system, hist, cm), {})
                _, best = _best({s: _median(by.get((s, hist, cm), {}).get("overhead_ms")) for s in names})
                extra = ratio(_median(row.get("overhead_ms")), best) if system.startswith("mooring") else ""
                line.append(cell(row.get("overhead_ms")) + extra)
            for hist in hists:
                row = by.get((system, hist, cm), {})
                if s3:
                    line.append(_bytes(row.get("put_bytes")))
                else:
                    line.append(f"{_bytes(row.get('stored_bytes'))} / {_bytes(row.get('wchar'))}")
            if s3:
                for hist in hists:
                    req = by.get((system, hist, cm), {}).get("requests_per_turn") or {}
                    line.append(", ".join(f"{op} {v:g}" for op, v in sorted(req.items()) if v) or "n/a")
            body.append(line)
    header = ["system", "conversation manager", *[f"overhead @{h:,}, ms" for h in hists]]
    if s3:
        header += [f"PUT bytes/turn @{h:,}" for h in hists] + [f"requests/turn @{h:,}" for h in hists]
    else:
        header += [f"bytes/turn @{h:,} (stored / write())" for h in hists]
    return table(header, body)


def md_turn(result: dict[str, Any]) -> list[str]:
    rows, hists = result["rows"], result["hists"]
    out = [*_turn_table(rows, hists, s3=False), *_failed(rows)]
    if result.get("floor_ms"):
        out += [f"Durable-turn floor: {cell(result['floor_ms'])} ms per turn.", ""]
    bare = {(r["family"], r["hist"], r["cm"]): r for r in result.get("bare_rows") or []}
    body = []
    for family in dict.fromkeys(f for f, _, _ in bare):
        for cm in ("window", "null"):
            if any((family, h, cm) in bare for h in hists):
                cells = []
                for h in hists:
                    row = bare.get((family, h, cm), {})
                    cells.append(f"{cell(row.get('ms'))}; turns q1–q3 {cell(row.get('turns'), 'iqr')}")
                body.append([family, cm, *cells])
    if body:
        out += [
            "Turn time without a session manager: median (min–max) of each process's median; q1–q3 over every turn:",
            "",
        ]
        out += table(
            ["SDK", "conversation manager", *[f"turn time without session manager @{h:,}, ms" for h in hists]], body
        )
    return [*out, *_notes(result)]


def md_s3(result: dict[str, Any]) -> list[str]:
    body = []
    for row in result["restore_rows"]:
        if row.get("error"):
            continue
        requests = row.get("requests") or {}
        ops = ", ".join(f"{op} {n}" for op, n in sorted((requests.get("ops") or {}).items()))
        mark = " †" if row["system"].startswith("snapshot") else ""
        body.append(
            [name(row["system"]) + mark, f"{row['size']:,}", cell(row["ms"]), ops, str(requests.get("total", "n/a"))]
        )
    out = ["**Restore a 40-message window** († the snapshot stores only the window)", ""]
    out += table(["system", "stored", "time, ms", "requests by operation", "total requests"], body)
    out += ["**Per turn** (overhead ms, S3 PUT bytes and requests per turn)", ""]
    out += _turn_table(result["turn_rows"], result["hists"], s3=True)
    return [*out, *_failed(result["restore_rows"] + result["turn_rows"]), *_notes(result)]


def md_concurrency(result: dict[str, Any]) -> list[str]:
    body = []
    for r in result["rows"]:
        if r.get("error"):
            body.append([name(r["system"]), "n/a: " + r["error"][:120], *[""] * 6])
            continue
        body.append(
            [
                name(r["system"]),
                num(r["wall_s"]),
                f"{r['messages']} / {r['expected_messages']}",
                str(r["lost_turns"]),
                str(r["duplicated_turns"]),
                str(r["misordered_turns"]),
                f"{r['lost_state_updates']} / {r['lost_worker_key_updates']}",
                str(r["failed_workers"]),
            ]
        )
    header = [
        "system",
        "wall, s",
        "messages stored / expected",
        "lost turns",
        "duplicated",
        "misordered",
        "lost state updates (counter / worker keys)",
        "failed workers",
    ]
    return [*table(header, body), *_notes(result)]


def _kinds(kinds: dict[str, int]) -> str:
    total = sum(kinds.values())
    if not total:
        return "0"
    return f"{total} (" + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) + ")"


def md_crash(result: dict[str, Any]) -> list[str]:
    body = []
    for r in result["rows"]:
        if r.get("error"):
            body.append([name(r["system"]), "n/a: " + r["error"][:120], *[""] * 6])
            continue
        turns = sorted(r["turns_before_kill"])
        body.append(
            [
                name(r["system"]),
                str(r["trials"]),
                str(r["unloadable"]),
                str(r["torn_records"]),
                _kinds(r["dangling_stored"]),
                _kinds(r["dangling_after_reopen"]),
                str(r["temp_files_left"]),
                f"{turns[len(turns) // 2]} ({turns[0]}–{turns[-1]})" if turns else "n/a",
            ]
        )
    header = [
        "system",
        "kills",
        "unloadable sessions",
        "torn records",
        "dangling turns as stored",
        "dangling after reopen",
        "temp files left",
        "turns before kill, median (min–max)",
    ]
    return [*table(header, body), *_notes(result)]


def md_imports(result: dict[str, Any]) -> list[str]:
    body = [[f'`python -c "{r["code"]}"`', cell(r["wall"]), cell(r["net"])] for r in result["rows"]]
    out = table(["command", "wall, ms", "net of `pass`, ms"], body)
    return [*out, f"import mooring / import strands (net): **{result['ratio']:.2f}**", "", *_notes(result)]


RENDERERS = {
    "append": md_append,
    "restore": md_restore,
    "turn": md_turn,
    "s3": md_s3,
    "concurrency": md_concurrency,
    "crash": md_crash,
    "imports": md_imports,
}


def md_rows(result: dict[str, Any]) -> list[str]:
    """A workload without a renderer of its own: its rows as they are, medians for statistics."""
    rows = [r for r in result.get("rows") or [] if isinstance(r, dict)]
    keys = list(dict.fromkeys(k for r in rows for k in r))

    def show(v: Any) -> str:
        return cell(v) if isinstance(v, dict) and "median" in v else str(v)

    body = [[show(r.get(k, "")) for k in keys] for r in rows]
    return [*(table(keys, body) if rows else []), *_notes(result)]


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    out = [
        "# mooring vs strands-agents: benchmark results",
        "",
        f"Mode **{meta['mode']}**, finished {meta['finished_at']}, {meta['wall_seconds']} s wall "
        f"({meta['machine']['cpus']} CPUs, {meta['machine']['platform']}). {versions}.",
        "Produced by `python -m bench` (`make bench`); see `bench/README.md` for the method.",
        "",
    ]
    if meta.get("only"):
        out += [f"This run measured only {', '.join(meta['workloads_run'])}.", ""]
    out += [
        "Systems in this run:",
        "",
    ]
    out += [f"- {name(s)}: {status}" for s, status in meta["availability"].items()]
    out += ["", "## Targets", ""]
    body = [[t["area"], t["target"], t["measured"], t["status"], t.get("note", "")] for t in results["targets"]]
    out += table(["area", "target", "measured", "verdict", "why / what would close it"], body)
    for number, (key, title) in enumerate(REGISTRY.items(), 1):
        result = results["workloads"].get(key)
        if result is None:
            continue
        render = RENDERERS.get(key, md_rows)
        out += [f"## {number}. {title}", ""]
        if "error" in result and "rows" not in result and "restore_rows" not in result:
            out += [f"n/a: the workload failed: {result['error']}", ""]
            continue
        out += render(result)
    return "\n".join(out).rstrip() + "\n"
