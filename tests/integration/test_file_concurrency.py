"""8 processes x 25 turns on one file-backed session: nothing lost, duplicated or misordered."""

from __future__ import annotations

from pathlib import Path

import pytest

from mooring.testing import SameSessionTrialContract


@pytest.mark.slow
class TestFileSameSession(SameSessionTrialContract):
    @pytest.fixture
    def trial_store(self, tmp_path: Path) -> str:
        return f"file://{tmp_path / 'store'}"
