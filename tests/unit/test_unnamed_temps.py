"""New records are written to unnamed temp files (O_TMPFILE) where the platform has them, and
to named ones elsewhere; both publish the same bytes under the same names."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path
from typing import Any

import pytest

from mooring.session.backends.file import _fs
from mooring.session.backends.file.repository import FileSessionRepository
from mooring.session.records import AgentRecord, MessageRecord, SessionRecord


def _write_session(root: Path) -> list[str]:
    async def main() -> list[str]:
        repo = FileSessionRepository(root)
        await repo.create_session(SessionRecord(session_id="s"))
        await repo.create_agent("s", AgentRecord(agent_id="a"))
        batch = [
            MessageRecord(message_id=i, message={"role": "user", "content": [{"text": f"m{i}"}]}) for i in range(3)
        ]
        await repo.append_messages("s", "a", batch)
        texts = [r.message["content"][0]["text"] for r in await repo.read_messages("s", "a")]
        await repo.close()
        return texts

    return asyncio.run(main())


def _names(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".mooring-locks" not in p.parts)


@pytest.mark.skipif(not _fs._unnamed_ok, reason="no O_TMPFILE or /proc here: named temp files only")
def test_unnamed_temps_publish_records_and_leave_no_temp_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[int] = []
    real_open = os.open

    def spy(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        opened.append(flags)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    assert _write_session(tmp_path) == ["m0", "m1", "m2"]
    assert any(f & _fs._O_UNNAMED == _fs._O_UNNAMED for f in opened)
    assert not [n for n in _names(tmp_path) if _fs.TEMP_PREFIX in n]


def test_a_file_system_without_unnamed_temps_falls_back_to_named_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open
    refused: list[int] = []

    def no_tmpfile(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if _fs._O_UNNAMED and flags & _fs._O_UNNAMED == _fs._O_UNNAMED:
            refused.append(flags)
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_tmpfile)
    monkeypatch.setattr(_fs, "_unnamed_ok", _fs._unnamed_ok)  # restored after the test
    expected = ["m0", "m1", "m2"]
    assert _write_session(tmp_path) == expected
    assert len(refused) <= 1  # the first refusal switches the process to named temp files
    assert not _fs._unnamed_ok
    assert not [n for n in _names(tmp_path) if _fs.TEMP_PREFIX in n]
    again = tmp_path / "again"
    assert _write_session(again) == expected
