"""The bench's target verdicts on small synthetic results (no measuring)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
if (REPO / "bench" / "targets.py").exists() and str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
targets = pytest.importorskip("bench.targets")


def stats(median: float, low: float, high: float, n: int = 3) -> dict[str, Any]:
    return {"median": median, "min": low, "max": high, "n": n}


def turn_results(strands: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    rows = [
        {"system": "strands-file", "hist": 100, "cm": "window", "overhead_ms": strands},
        {"system": "mooring-file", "hist": 100, "cm": "window", "overhead_ms": ours},
    ]
    return {"workloads": {"turn": {"rows": rows}}}


def verdict(results: dict[str, Any], target: str) -> dict[str, Any]:
    found = [t for t in targets.evaluate(results) if t["target"] == target]
    assert len(found) == 1, [t["target"] for t in targets.evaluate(results)]
    return found[0]


VS_STRANDS = "durable per-turn overhead at 100 (window 40) <= Strands file's"


@pytest.mark.parametrize(
    "baseline",
    [
        stats(-1.28, -2.0, -0.5),  # negative
        stats(0.4, -0.3, 1.1),  # its spread straddles 0
        stats(0.2, 0.05, 0.9),  # |median| smaller than its spread
    ],
)
def test_a_negative_or_noisy_baseline_gives_no_ratio(baseline: dict[str, Any]) -> None:
    item = verdict(turn_results(baseline, stats(1.0, 0.9, 1.1)), VS_STRANDS)
    assert item["status"] == "n/a (noise)"
    assert "x" not in item["measured"].split(":")[-1]  # no ratio printed


def test_a_clear_baseline_is_compared() -> None:
    item = verdict(turn_results(stats(2.0, 1.9, 2.2), stats(1.0, 0.9, 1.1)), VS_STRANDS)
    assert item["status"] == "met"
    assert "0.50x" in item["measured"]
    item = verdict(turn_results(stats(2.0, 1.9, 2.2), stats(3.0, 2.9, 3.1)), VS_STRANDS)
    assert item["status"] == "missed"
    assert item["note"].startswith("1.50x where <= 1x is needed")


def test_noisy_is_false_for_a_single_sample_and_for_a_tight_positive_spread() -> None:
    assert not targets.noisy({"median": 1.0, "min": 1.0, "max": 1.0, "n": 1})
    assert not targets.noisy(stats(1.0, 0.8, 1.3))
    assert targets.noisy({"median": 0.0, "min": 0.0, "max": 0.0, "n": 1})


def test_missing_rows_are_not_applicable_and_no_target_names_an_issue() -> None:
    items = targets.evaluate({"workloads": {}})
    assert items and all(t["status"] == "n/a" for t in items)
    assert not any("issue" in t["target"].lower() for t in items)


def test_a_workload_without_a_renderer_is_shown_as_a_table_of_its_rows() -> None:
    from bench import report

    lines = report.md_rows({"rows": [{"system": "x", "ms": stats(1.5, 1.0, 2.0)}], "notes": ["a note"]})
    assert lines[0] == "| system | ms |"
    assert "| x | 1.50 (1.00–2.00) |" in lines
    assert "- a note" in lines
