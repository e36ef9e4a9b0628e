"""Workload 7: cold ``import mooring`` vs ``import strands``, each in a fresh interpreter.

The cost of an import is the wall time of ``python -c "import X"`` minus that of
``python -c "pass"`` measured in the same repeat, so interpreter start-up and site
initialisation cancel out.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

from bench.context import Context, summary

CASES = {
    "pass": "pass",
    "mooring": "import mooring",
    "mooring.session": "import mooring.session",
    "strands": "import strands",
}


def run(ctx: Context) -> dict[str, Any]:
    repeats = ctx.reps(15, 3)
    env = ctx.child_env()
    raw: dict[str, list[float]] = {name: [] for name in CASES}
    for repeat in range(repeats):
        order = list(CASES) if repeat % 2 == 0 else ["pass", "strands", "mooring.session", "mooring"]
        for name in order:
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", CASES[name]], check=True, env=env)
            raw[name].append(time.perf_counter() - started)
    rows = []
    for name in CASES:
        net = [t - base for t, base in zip(raw[name], raw["pass"], strict=True)]
        rows.append({"case": name, "code": CASES[name], "wall": summary(raw[name], 1e3), "net": summary(net, 1e3)})
    by = {r["case"]: r for r in rows}
    ratio = by["mooring"]["net"]["median"] / by["strands"]["net"]["median"]
    return {
        "repeats": repeats,
        "rows": rows,
        "ratio": ratio,
        "notes": ["net = wall time of the import minus `python -c pass` in the same repeat; ms"],
    }
