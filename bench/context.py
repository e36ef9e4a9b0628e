"""What every workload gets: the run's settings, the systems available, child processes, stats."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import systems
from bench.moto import MotoServer

REPO_ROOT = Path(__file__).resolve().parents[1]


class ChildError(RuntimeError):
    """A measuring child failed; the row is reported as n/a with this message."""


@dataclass(kw_only=True)
class Context:
    quick: bool
    repeats: int | None  # --repeats override; None: each workload's default
    root: Path
    run_id: str
    moto: MotoServer | None = None
    availability: dict[str, str] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)  # fixtures reused across workloads
    started: float = field(default_factory=time.monotonic)

    @property
    def env(self) -> dict[str, Any]:
        """The JSON-able description of this run that child processes need."""
        return {"root": str(self.root), "run_id": self.run_id, "s3_port": self.moto.port if self.moto else None}

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env.pop("MOORING_STORE", None)
        env["MOORING_HOME"] = str(self.root / "mooring-home")
        if self.moto is not None:
            env.update(self.moto.env)
        return env

    def reps(self, full: int, quick: int = 1) -> int:
        if self.repeats is not None:
            return self.repeats
        return quick if self.quick else full

    def available(self, names: Sequence[str]) -> list[str]:
        return [n for n in names if self.availability.get(n) == "ok"]

    def store(self, name: str, tag: str) -> dict[str, Any]:
        return systems.store(self.env, name, tag)

    def bulk_seeder(self) -> Any:
        return self.moto.seed if self.moto is not None else None

    def seed(self, spec: dict[str, Any], session_id: str, count: int, *, window: bool) -> None:
        """``systems.seed``, with the fast paths for S3 stores described in bench/README.md."""
        self.seed_many([(spec, session_id, count, window)])

    def seed_many(self, items: Sequence[tuple[dict[str, Any], str, int, bool]]) -> None:
        """Seed several stores; mooring S3 ones are written by two children at a time (each into
        its own in-process moto mock) and then loaded into the server."""
        remote = [i for i in items if i[0]["system"] == "mooring-s3" and i[2] > 100 and self.moto is not None]
        for spec, session_id, count, window in items:
            if (spec, session_id, count, window) not in remote:
                systems.seed(spec, session_id, count, window=window, bulk=self.bulk_seeder())
        if not remote:
            return
        jobs = [{"op": "s3seed", "store": s, "session": sid, "count": n, "window": w} for s, sid, n, w in remote]
        with ThreadPoolExecutor(2) as pool:
            for result in pool.map(self.run_child, jobs):
                assert self.moto is not None
                self.moto.seed([(key, body.encode("utf-8")) for key, body in result["objects"]])

    def run_child(self, job: dict[str, Any], *, timeout: float = 600) -> dict[str, Any]:
        """Run one job in a fresh ``python -m bench.worker``; raises ChildError on failure."""
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "bench.worker"],
                input=json.dumps(job),
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=REPO_ROOT,
                env=self.child_env(),
            )
        except subprocess.TimeoutExpired as exc:
            raise ChildError(f"worker timed out after {timeout:.0f}s") from exc
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if not lines:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ChildError(f"worker exited {proc.returncode}: {tail[0][:200]}")
        result: dict[str, Any] = json.loads(lines[-1])
        if "error" in result:
            log(result.get("traceback", ""))
            raise ChildError(result["error"][:300])
        return result

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def alternate(names: Sequence[str], repeat: int) -> list[str]:
    """mooring first on even repeats, Strands first on odd ones, so drift (page cache, CPU
    frequency, a neighbour's load) does not always favour the same side."""
    ours = [n for n in names if n == "floor" or systems.is_mooring(n)]
    theirs = [n for n in names if n not in ours]
    return ours + theirs if repeat % 2 == 0 else theirs + ours


def summary(values: Sequence[float], scale: float = 1.0) -> dict[str, Any]:
    """Median, min, max, quartiles (scaled, e.g. 1e3 for ms) and the sample count."""
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    data = sorted(v * scale for v in values)
    out: dict[str, Any] = {"median": statistics.median(data), "min": data[0], "max": data[-1], "n": len(data)}
    if len(data) >= 4:
        q = statistics.quantiles(data, n=4)
        out["q1"], out["q3"] = q[0], q[2]
    return out
