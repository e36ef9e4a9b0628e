"""8 processes x 25 turns on one file-backed session: nothing lost, duplicated or misordered."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.concurrency import run_trial


@pytest.mark.slow
def test_eight_processes_share_one_session(tmp_path: Path) -> None:
    report = run_trial(f"file://{tmp_path / 'store'}", "busy-session", processes=8, turns=25)
    assert report.problems == []
    assert report.messages == 8 * 25 * 4
    assert report.counter == 200
