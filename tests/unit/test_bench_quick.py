"""`python -m bench --quick` runs and writes well-formed results (it asserts nothing about time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not (REPO / "bench" / "__main__.py").exists(), reason="the bench package is not in this checkout"
)


def test_quick_bench_writes_markdown_and_json(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "imports,append", "--output-dir", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]

    # --only writes its own files and never the full run's.
    assert {p.name for p in tmp_path.iterdir()} == {"quick-only-imports-append.json", "quick-only-imports-append.md"}
    results = json.loads((tmp_path / "quick-only-imports-append.json").read_text())
    assert results["meta"]["mode"] == "quick"
    assert results["meta"]["only"] is True
    assert set(results["workloads"]) == {"imports", "append"}

    imports = results["workloads"]["imports"]
    assert "error" not in imports
    assert {row["case"] for row in imports["rows"]} >= {"pass", "mooring", "strands"}
    assert all(row["wall"]["n"] >= 1 and row["wall"]["median"] > 0 for row in imports["rows"])

    append = results["workloads"]["append"]
    assert "error" not in append
    by_system = {row["system"]: row for row in append["rows"] if row["existing"] == 0}
    # The floor, mooring's file backend and Strands' file manager need nothing but a disk.
    for system in ("floor", "mooring-file", "strands-file"):
        assert by_system[system].get("error") is None, by_system[system]
        assert by_system[system]["ms"]["n"] >= 1

    targets = {t["target"]: t for t in results["targets"]}
    assert all(t["status"] in ("met", "missed", "n/a", "n/a (noise)") for t in targets.values())
    assert targets["`import mooring` net time <= 1/8 of `import strands`"]["status"] not in ("n/a",)

    markdown = (tmp_path / "quick-only-imports-append.md").read_text()
    assert markdown.startswith("# mooring vs strands-agents")
    for heading in ("## Targets", "## 1. Append latency per message", "## 7. Cold import"):
        assert heading in markdown
    assert "## 2. Restore time" not in markdown  # only the workloads that ran
    assert "issue" not in markdown.lower()


@pytest.mark.slow
def test_every_workload_runs_in_quick_mode(tmp_path: Path) -> None:
    """The CI smoke run: every workload, small, for every system this machine has."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--output-dir", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((tmp_path / "quick.json").read_text())
    assert set(results["workloads"]) == {
        "append",
        "restore",
        "turn",
        "s3",
        "concurrency",
        "crash",
        "imports",
        "summarizing",
    }
    for name, workload in results["workloads"].items():
        assert "error" not in workload, (name, workload.get("error"))
    # Nothing is lost under concurrency on any mooring backend, in the smoke run too.
    lost = [row for row in results["workloads"]["concurrency"]["rows"] if row["system"].startswith("mooring")]
    assert lost and all(row.get("lost_turns", 0) == 0 for row in lost), lost
    # The summarized sessions restore only their window, at both sizes of the smoke run.
    summarized = results["workloads"]["summarizing"]["rows"]
    assert [row["turns"] for row in summarized] == [100, 400]
    assert all(row["window"] < row["stored_messages"] / 4 and row["bytes_read"]["median"] > 0 for row in summarized)
