"""Workload 6: kill -9 at random moments of a running turn.

Each trial forks (from the bench's fork server) a process that restores a new session
with the default 40-message window and runs tool turns in a loop (prompt, toolUse,
toolResult, reply), and kills it with SIGKILL a random 0-60 ms after its Agent is ready, so
kills land anywhere in a turn. After all trials, one fresh process inspects every session:

- torn records: stored JSON documents (or rows) that fail to parse; leftover temp files;
- dangling as stored: the stored history ends on an unanswered prompt, a toolUse without
  its result, or a toolResult without the reply (read raw, before anything repairs it);
- unloadable: building an Agent on the session (the restore) raises;
- dangling after reopen: the same check on what is stored after that restore, i.e. what
  the next process to continue this conversation finds on disk.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

from bench import systems
from bench.context import REPO_ROOT, ChildError, Context, log
from bench.data import AGENT_ID
from bench.zygote import Zygote

NAMES = ["mooring-file", "mooring-sqlite", "strands-file", "snapshot-file"]
MAX_DELAY = 0.06


def tail_kind(messages: list[dict[str, Any]]) -> str | None:
    """How a stored history is left open at its end, or None if it ends on a reply."""
    if not messages:
        return None
    last = messages[-1]
    blocks = last.get("content") or []
    if last.get("role") == "assistant":
        return "toolUse" if any("toolUse" in b for b in blocks) else None
    return "toolResult" if any("toolResult" in b for b in blocks) else "prompt"


def _unpaired_tool_uses(messages: list[dict[str, Any]]) -> int:
    count = 0
    for i, message in enumerate(messages[:-1]):
        uses = {b["toolUse"]["toolUseId"] for b in message.get("content", []) if "toolUse" in b}
        if uses:
            results = {b["toolResult"]["toolUseId"] for b in messages[i + 1].get("content", []) if "toolResult" in b}
            count += len(uses - results)
    return count


def _scan_files(directory: Path) -> tuple[int, int, dict[int, Any]]:
    """(torn JSON files, leftover temp files, parsed message records by id) under a
    repository-layout session directory."""
    torn = temps = 0
    records: dict[int, Any] = {}
    for base, _, files in os.walk(directory):
        for name in files:
            if name.startswith("."):
                temps += 1
                continue
            if not name.endswith(".json"):
                continue
            try:
                data = json.loads(Path(base, name).read_bytes())
            except (ValueError, UnicodeDecodeError):
                torn += 1
                continue
            if name.startswith("message_") and name[8:-5].isdigit():
                records[int(name[8:-5])] = data
    return torn, temps, records


def _raw(spec: dict[str, Any], session_id: str) -> dict[str, Any]:
    name = spec["system"]
    out: dict[str, Any] = {"torn": 0, "temp_files": 0, "gaps": 0}
    if name in ("mooring-file", "strands-file"):
        directory = Path(spec["dir"], f"session_{session_id}")
        torn, temps, records = _scan_files(directory)
        ids = sorted(records)
        out.update(torn=torn, temp_files=temps, gaps=(ids[-1] + 1 - len(ids)) if ids else 0)
        messages = [r["redact_message"] or r["message"] for _, r in sorted(records.items())]
    elif name == "snapshot-file":
        directory = Path(spec["dir"], "session", session_id, "scopes", "agent", AGENT_ID, "snapshots")
        out["temp_files"] = sum(1 for p in directory.iterdir() if p.name.startswith(".")) if directory.exists() else 0
        try:
            messages = json.loads((directory / "snapshot_latest.json").read_bytes())["data"]["messages"]
        except FileNotFoundError:
            messages = []  # killed before the first save: nothing stored, nothing torn
        except (ValueError, KeyError):
            out["torn"] = 1
            messages = []
    else:
        import sqlite3

        with sqlite3.connect(f"file:{spec['path']}?mode=ro", uri=True) as conn:
            if conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                out["torn"] += 1
        try:
            messages, _ = systems.read_back(spec, session_id)
        except Exception:
            out["torn"] += 1
            messages = []
    out["dangling_stored"] = tail_kind(messages)
    out["unpaired_tool_uses"] = _unpaired_tool_uses(messages)
    out["stored_messages"] = len(messages)
    return out


def inspect_session(spec: dict[str, Any], session_id: str) -> dict[str, Any]:
    """Run in a fresh process (the ``crashcheck`` worker job) after the trials."""
    out: dict[str, Any] = {"session": session_id}
    out.update(_raw(spec, session_id))
    family = systems.SYSTEMS[spec["system"]].family
    try:
        agent = systems.build_agent(spec, session_id, family=family, cm="window", tools=True)
        out["loaded"] = True
        systems.close_agent(agent)
    except Exception as exc:
        out["loaded"] = False
        out["load_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    try:
        after = _raw(spec, session_id)
        out["dangling_after_reopen"] = after["dangling_stored"]
    except Exception as exc:
        out["dangling_after_reopen"] = f"unreadable: {type(exc).__name__}"
    return out


def run(ctx: Context) -> dict[str, Any]:
    trials = 10 if ctx.quick else 100
    names = ctx.available(NAMES)
    rows = []
    zygote = Zygote(ctx.child_env(), REPO_ROOT)
    try:
        for index, name in enumerate(names):
            rng = random.Random(8 + index)  # reproducible kill times per system
            spec = ctx.store(name, "crash")
            errors_path = Path(ctx.root, "stderr", f"crash-{name}.err")
            errors_path.parent.mkdir(parents=True, exist_ok=True)
            sessions, turns, not_ready = [], [], []
            for trial in range(trials):
                session = f"crash-{trial}"
                cmd = {
                    "op": "crash",
                    "store": spec,
                    "session": session,
                    "family": systems.SYSTEMS[name].family,
                    "delay": rng.uniform(0.0, MAX_DELAY),
                    "stderr": str(errors_path),
                }
                result = zygote.call(cmd)
                if not result.get("ready"):
                    not_ready.append(result.get("stderr") or result.get("error") or "not ready")
                sessions.append(session)
                turns.append(result.get("turns", 0))
            row: dict[str, Any] = {"system": name, "trials": trials, "turns_before_kill": turns}
            if not_ready:
                row["not_ready"] = len(not_ready)
                row["not_ready_example"] = not_ready[0][:200]
            try:
                found = ctx.run_child({"op": "crashcheck", "store": spec, "sessions": sessions}, timeout=900)
            except ChildError as exc:
                row["error"] = str(exc)
                rows.append(row)
                continue
            checked = found["sessions"]
            row.update(
                unloadable=sum(1 for s in checked if not s["loaded"]),
                torn_records=sum(s["torn"] for s in checked),
                temp_files_left=sum(s["temp_files"] for s in checked),
                id_gaps=sum(s["gaps"] for s in checked),
                dangling_stored=_kinds(s["dangling_stored"] for s in checked),
                dangling_after_reopen=_kinds(s["dangling_after_reopen"] for s in checked),
                unpaired_tool_uses=sum(s["unpaired_tool_uses"] for s in checked),
                load_errors=sorted({s["load_error"] for s in checked if not s["loaded"]})[:3],
            )
            rows.append(row)
            log(f"  {name}: {row['unloadable']} unloadable, dangling {row['dangling_stored']}")
    finally:
        zygote.close()
    return {
        "rows": rows,
        "trials": trials,
        "notes": [
            f"{trials} kill -9 trials per system, each a new session; kill {MAX_DELAY * 1000:.0f} ms or less after "
            "the Agent is ready, while tool turns run in a loop.",
            "kill -9 is a process crash, not a power cut: the page cache survives, so missing fsyncs do not show "
            "here (the append workload prices them).",
            "dangling after reopen = what is stored after the next process restored the session: mooring closes "
            "an open turn durably on restore; Strands repairs only in memory (or not at all for the last message).",
            "mooring backends with expiring leases (sqlite here) leave the repair to the next invocation while the "
            "killed process's lease is still live (lease_ttl, 30 s by default), since someone could be mid-turn; "
            "the file backend's flock dies with the process, so its restore repairs at once.",
            "The snapshot (save_latest_on='invocation') is never left dangling because a killed turn is not "
            "stored at all: the whole turn in progress is lost instead.",
        ],
    }


def _kinds(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        if value:
            out[str(value)] = out.get(str(value), 0) + 1
    return out
