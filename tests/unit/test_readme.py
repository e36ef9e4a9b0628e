"""The README's first snippet does what the README says when run twice."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _snippet(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split(f"## {heading}", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no python block under {heading!r}"
    return match.group(1)


def test_running_the_offline_snippet_twice_shows_the_restored_history(tmp_path: Path) -> None:
    code = _snippet("Ten lines that run offline")
    runs = [
        subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        for _ in range(2)
    ]

    for run in runs:
        assert run.returncode == 0, run.stderr
    assert runs[0].stdout.splitlines()[0] == "restored 0 messages"
    assert runs[1].stdout.splitlines()[0] == "restored 6 messages"
    assert "The tool returned: 4" in runs[1].stdout
