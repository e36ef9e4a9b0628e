"""Reading stored records fast without reading them differently: orjson with the stdlib parser
behind it, and the cyclic collector paused only while a long range is decoded."""

from __future__ import annotations

import asyncio
import gc
import json
import math
import threading
from pathlib import Path
from typing import Any

import pytest

from mooring._gc import PAUSE_FROM, collection_paused
from mooring._json import loads
from mooring.session.backends.file.repository import FileSessionRepository
from mooring.session.records import AgentRecord, MessageRecord, SessionRecord

PYTHON_ONLY = {
    "nan": float("nan"),
    "infinity": float("inf"),
    "big-int": 2**70,
    "lone-surrogate-escape": "\ud800",
}


@pytest.mark.parametrize("value", PYTHON_ONLY.values(), ids=PYTHON_ONLY.keys())
def test_what_pythons_writer_stores_and_orjson_refuses_still_reads(value: Any) -> None:
    text = json.dumps({"v": value})
    got = loads(text)["v"]
    if isinstance(value, float) and math.isnan(value):
        assert math.isnan(got)
    else:
        assert got == value
    assert loads(text.encode("utf-8") if "\\ud800" not in text else text)["v"] is not None


def test_invalid_json_is_still_a_json_error() -> None:
    with pytest.raises(json.JSONDecodeError):
        loads('{"truncated": ')
    with pytest.raises(json.JSONDecodeError):
        loads(b"")


def test_pauses_nest_across_threads_and_resume_only_what_was_enabled() -> None:
    assert gc.isenabled()
    inside = threading.Event()
    leave = threading.Event()

    def other() -> None:
        with collection_paused(PAUSE_FROM):
            inside.set()
            leave.wait(10)

    worker = threading.Thread(target=other)
    with collection_paused(PAUSE_FROM):
        assert not gc.isenabled()
        worker.start()
        assert inside.wait(10)
    assert not gc.isenabled()  # the other thread's decode is still running
    leave.set()
    worker.join(10)
    assert gc.isenabled()

    with collection_paused(PAUSE_FROM - 1):
        assert gc.isenabled()  # a short range is not worth a pause

    gc.disable()
    try:
        with collection_paused(PAUSE_FROM):
            pass
        assert not gc.isenabled()  # the application's choice is kept
    finally:
        gc.enable()


async def _long_session(repo: Any) -> None:
    """Session "s", agent "a", with a range long enough for the collector to be paused."""
    await repo.create_session(SessionRecord(session_id="s"))
    await repo.create_agent("s", AgentRecord(agent_id="a"))
    records = [
        MessageRecord(message_id=i, message={"role": "user", "content": [{"text": str(i)}]})
        for i in range(PAUSE_FROM + 10)
    ]
    await repo.append_messages("s", "a", records)


def test_a_failed_decode_resumes_the_collector_and_names_the_file(tmp_path: Path) -> None:
    async def main() -> None:
        repo = FileSessionRepository(tmp_path)
        await _long_session(repo)
        target = tmp_path / "session_s" / "agents" / "agent_a" / "messages" / "message_260.json"
        target.write_text('{"message": ')
        with pytest.raises(Exception, match=r"message_260\.json"):
            await repo.read_messages("s", "a")
        assert gc.isenabled()
        assert len(await repo.read_messages("s", "a", 0, 260)) == 260

    asyncio.run(main())


def test_a_damaged_sqlite_row_in_a_long_range_is_named(tmp_path: Path) -> None:
    import sqlite3

    from mooring.errors import CorruptRecordError
    from mooring.session.backends.sql.sqlite import SQLiteSessionRepository

    async def main() -> None:
        repo = SQLiteSessionRepository(tmp_path / "s.db")
        await _long_session(repo)
        assert [r.message_id for r in await repo.read_messages("s", "a")] == list(range(PAUSE_FROM + 10))
        with sqlite3.connect(tmp_path / "s.db") as conn:
            conn.execute("UPDATE mooring_messages SET data = '{\"message\": ' WHERE message_id = 123")
        with pytest.raises(CorruptRecordError, match="message 123"):
            await repo.read_messages("s", "a")
        assert gc.isenabled()
        await repo.close()

    asyncio.run(main())
