"""The workload registry: one line per workload, in the order they run and are reported.

Each entry names a module ``bench.workloads.<name>`` exposing ``run(ctx) -> dict`` (rows and
notes for the report) and the title of its section; a workload with no renderer of its own
in ``bench.report.RENDERERS`` is shown as a plain table of its rows.
"""

from __future__ import annotations

REGISTRY: dict[str, str] = {
    "append": "Append latency per message",
    "restore": "Restore time (fresh process)",
    "turn": "Per-turn persistence overhead in the agent loop",
    "s3": "S3 (moto): requests, restore and bytes per turn",
    "concurrency": "Same-session concurrency",
    "crash": "Crash trials (kill -9)",
    "imports": "Cold import",
    "summarizing": "Summarized sessions: restore time and bytes read at 100 vs 2,000 turns",
}
NAMES = list(REGISTRY)
