"""What a turn costs on SQLite: lease rows commit without a WAL sync of their own, the turn's
messages and the agent record with one, and small reads on a warm pool skip the thread hop."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from mooring.session import _threaded
from mooring.session.backends.sql.sqlite import SQLiteSessionRepository
from mooring.session.records import AgentRecord, MessageRecord, SessionRecord


def _msg(i: int) -> MessageRecord:
    return MessageRecord(message_id=i, message={"role": "user", "content": [{"text": f"m{i}"}]})


async def _ready(repo: SQLiteSessionRepository) -> None:
    await repo.create_session(SessionRecord(session_id="s"))
    await repo.create_agent("s", AgentRecord(agent_id="a"))


def _traced(repo: SQLiteSessionRepository) -> list[str]:
    """Statements run on the pool's (single) idle connection from now on."""
    (conn,) = repo._db._idle
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    return seen


def _synchronous(repo: SQLiteSessionRepository) -> int:
    (conn,) = repo._db._idle
    return int(conn.execute("PRAGMA synchronous").fetchone()[0])


def test_lease_rows_commit_unsynced_and_the_connection_goes_back_synced(tmp_path: Path) -> None:
    async def main() -> None:
        repo = SQLiteSessionRepository(tmp_path / "s.db")
        await _ready(repo)
        seen = _traced(repo)
        lease = await repo.acquire_lease("s", "a", ttl=30.0, wait=0.0)
        assert seen[0] == "PRAGMA synchronous = NORMAL" and seen[-1] == "PRAGMA synchronous = FULL", seen
        assert "BEGIN IMMEDIATE" in seen and "COMMIT" in seen
        assert _synchronous(repo) == 2  # FULL: what the turn's own writes commit with

        seen.clear()
        await repo.append_messages("s", "a", [_msg(0)])
        assert not any("synchronous" in s for s in seen), seen  # the turn's messages stay synced

        for call in (repo.renew_lease(lease, ttl=30.0), repo.release_lease(lease)):
            seen.clear()
            await call
            assert seen[0] == "PRAGMA synchronous = NORMAL" and seen[-1] == "PRAGMA synchronous = FULL", seen
            assert _synchronous(repo) == 2
        await repo.close()

    asyncio.run(main())


def test_durability_none_never_switches(tmp_path: Path) -> None:
    async def main() -> None:
        repo = SQLiteSessionRepository(tmp_path / "s.db", durability="none")
        await _ready(repo)
        seen = _traced(repo)
        lease = await repo.acquire_lease("s", "a", ttl=30.0, wait=0.0)
        await repo.release_lease(lease)
        assert not any("synchronous" in s for s in seen), seen
        assert _synchronous(repo) == 1  # NORMAL throughout
        await repo.close()

    asyncio.run(main())


def test_a_lease_left_by_an_unsynced_commit_is_still_fenced(tmp_path: Path) -> None:
    # The row is an ordinary row to every other connection: another repository on the same
    # file sees the lease as held and cannot take it.
    async def main() -> None:
        first = SQLiteSessionRepository(tmp_path / "s.db")
        second = SQLiteSessionRepository(tmp_path / "s.db")
        await _ready(first)
        lease = await first.acquire_lease("s", "a", ttl=30.0, wait=0.0)
        with pytest.raises(Exception, match="lease"):
            await second.acquire_lease("s", "a", ttl=30.0, wait=0.0)
        await first.release_lease(lease)
        again = await second.acquire_lease("s", "a", ttl=30.0, wait=0.0)
        await second.release_lease(again)
        await first.close()
        await second.close()

    asyncio.run(main())


def test_small_reads_run_in_place_on_a_warm_pool(tmp_path: Path, monkeypatch: Any) -> None:
    hops: list[str] = []
    real = _threaded.run_blocking

    async def counting(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(args[0], "__name__", "?"))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(_threaded, "run_blocking", counting)

    async def main() -> None:
        # Another task on the loop: alone, the backend would run every call in place.
        other = asyncio.create_task(asyncio.sleep(30))
        repo = SQLiteSessionRepository(tmp_path / "s.db")
        assert not repo._db.warm()
        await _ready(repo)
        await repo.append_messages("s", "a", [_msg(i) for i in range(20)])
        assert repo._db.warm()
        hops.clear()
        assert (await repo.read_agent("s", "a")) is not None
        assert await repo.message_head("s", "a") == 20
        assert [m.message_id for m in await repo.read_messages("s", "a", start=16, end=20)] == [16, 17, 18, 19]
        assert hops == []  # no thread hop
        await repo.read_messages("s", "a")  # to the head: size unknown, off the loop
        await repo.append_messages("s", "a", [_msg(20)])  # a write: off the loop
        assert len(hops) == 2, hops
        await repo.close()
        other.cancel()

    asyncio.run(main())


def test_a_synchronous_turn_makes_no_thread_hop(tmp_path: Path, monkeypatch: Any) -> None:
    from mooring import Agent
    from mooring.models.scripted import ScriptedModel
    from mooring.session import RepositorySessionManager

    hops: list[str] = []
    real = _threaded.run_blocking

    async def counting(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(args[0], "__name__", "?"))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(_threaded, "run_blocking", counting)
    repo = SQLiteSessionRepository(tmp_path / "s.db")
    agent = Agent(
        model=ScriptedModel(["one", "two"]),
        agent_id="a",
        callback_handler=None,
        session_manager=RepositorySessionManager("s", repo),
    )
    agent("first")
    hops.clear()
    agent("second")
    assert hops == []
