"""``python -m bench [--quick] [--only NAME[,NAME]] [--repeats N] [--output-dir DIR]``

Runs the workloads (all, or those named by ``--only``) for mooring and strands-agents in one
run on this machine, then writes ``latest.md``/``latest.json`` (``quick.*`` with
``--quick``) under ``bench/results``: every number in a results file comes from that one run.
With ``--only``, just the named workloads run and the results go to ``only-<names>.*``
(``quick-only-<names>.*`` with ``--quick``); the full run's files are left alone.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

from bench import report, systems
from bench.context import Context, log
from bench.moto import BUCKET, MotoServer
from bench.workloads import NAMES

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="run each workload small (CI smoke), write quick.*")
    parser.add_argument("--only", action="append", default=[], help=f"workload(s) to run: {', '.join(NAMES)}")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per measurement (default per workload)")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR, help="where results are written")
    args = parser.parse_args(argv)
    only = list(dict.fromkeys(n.strip() for item in args.only for n in item.split(",") if n.strip()))
    unknown = sorted(set(only) - set(NAMES))
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    args.only = only
    return args


def start_moto(ctx: Context) -> str:
    try:
        ctx.moto = MotoServer(ctx.root)
        os.environ.update(ctx.moto.env)
        import boto3

        boto3.client("s3").create_bucket(Bucket=BUCKET)
        return "ok"
    except Exception as exc:
        if ctx.moto is not None:
            ctx.moto.stop()
            ctx.moto = None
        return f"n/a: moto server failed to start: {type(exc).__name__}: {exc}"


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for package in ("mooring", "strands-agents", "boto3", "moto", "psycopg", "redis"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    selected = args.only or NAMES
    root = Path(tempfile.mkdtemp(prefix="mooring-bench-"))
    ctx = Context(quick=args.quick, repeats=args.repeats, root=root, run_id=uuid.uuid4().hex[:8])
    os.environ["MOORING_HOME"] = str(root / "mooring-home")
    os.environ.pop("MOORING_STORE", None)
    wall = time.monotonic()
    modules = {name: importlib.import_module(f"bench.workloads.{name}") for name in selected}
    needed = {s for module in modules.values() for s in getattr(module, "NAMES", []) if s in systems.SYSTEMS}
    try:
        # The moto server and the probes cost seconds: only for systems a selected workload uses.
        wants_s3 = any(systems.SYSTEMS[s].backend == "s3" for s in needed)
        moto_status = start_moto(ctx) if wants_s3 else "n/a: not needed"
        for name in (s for s in systems.SYSTEMS if s in needed):
            status = systems.probe(ctx.env, name)
            if systems.SYSTEMS[name].backend == "s3" and moto_status != "ok":
                status = moto_status
            ctx.availability[name] = status
            log(f"{name:20} {status}")
        workloads: dict[str, Any] = {}
        for name in selected:
            log(f"== {name} (t={ctx.elapsed():.0f}s)")
            started = time.monotonic()
            try:
                result = modules[name].run(ctx)
            except Exception as exc:
                log(traceback.format_exc())
                result = {"error": f"{type(exc).__name__}: {exc}"}
            result["seconds"] = round(time.monotonic() - started, 1)
            result["ran_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            workloads[name] = result
    finally:
        if ctx.moto is not None:
            ctx.moto.stop()
        systems.cleanup(ctx.env)
        shutil.rmtree(root, ignore_errors=True)
    meta = {
        "mode": "quick" if args.quick else "full",
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": round(time.monotonic() - wall, 1),
        "workloads_run": selected,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": versions(),
        "availability": ctx.availability,
    }
    base = "quick" if args.quick else "latest"
    if args.only:
        meta["only"] = True
        base = ("quick-" if args.quick else "") + "only-" + "-".join(selected)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    json_path = args.output_dir / f"{base}.json"
    results: dict[str, Any] = {"meta": meta, "workloads": workloads}
    results["targets"] = report.targets(results)
    json_path.write_text(json.dumps(results, indent=1, sort_keys=False) + "\n")
    (args.output_dir / f"{base}.md").write_text(report.markdown(results))
    log(f"wrote {json_path} and {base}.md in {meta['wall_seconds']}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
