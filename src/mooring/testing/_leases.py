"""The contract's lease tests and, for backends that declare ``"ttl"``, its TTL tests.

Part of :class:`mooring.testing.SessionRepositoryContract`; the fixtures (``repository``,
``ttl_repository``, ``session_ttl``) are the contract's.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mooring.errors import LeaseLostError, LeaseTimeoutError, SessionNotFoundError
from mooring.session.records import MultiAgentRecord, SessionRecord
from mooring.session.repository import SessionRepository
from mooring.testing._support import _eventually, _listed, _msg, _on_fresh_loop, _session_with_agent, _ttl_waits


class LeaseAndTTLContract:
    """Invocation leases on every backend; session expiry where the backend declares it."""

    # -- leases -------------------------------------------------------------------------------

    @_on_fresh_loop
    async def test_lease_excludes_a_second_holder(self, repository: SessionRepository) -> None:
        sid = await _session_with_agent(repository)
        lease = await repository.acquire_lease(sid, "agent", ttl=30, wait=0)
        with pytest.raises(LeaseTimeoutError):
            await repository.acquire_lease(sid, "agent", ttl=30, wait=0)
        with pytest.raises(LeaseTimeoutError):
            await repository.acquire_lease(sid, "agent", ttl=30, wait=0.2)
        other = await repository.acquire_lease(sid, "other-agent", ttl=30, wait=0)  # other agents are independent
        await repository.release_lease(other)
        await repository.release_lease(lease)
        await repository.release_lease(lease)  # releasing twice is harmless
        again = await repository.acquire_lease(sid, "agent", ttl=30, wait=0)
        assert again.token != lease.token
        await repository.release_lease(again)

    @_on_fresh_loop
    async def test_lease_waiter_gets_it_when_released(self, repository: SessionRepository) -> None:
        sid = await _session_with_agent(repository)
        lease = await repository.acquire_lease(sid, "agent", ttl=30, wait=0)
        events: list[str] = []

        async def wait_for_it() -> Any:
            acquired = await repository.acquire_lease(sid, "agent", ttl=30, wait=60)
            events.append("acquired")
            return acquired

        waiter = asyncio.create_task(wait_for_it())
        await asyncio.sleep(0.3)  # give the waiter time to try (and, if the lease were free, to succeed)
        assert not waiter.done(), "the waiter got past a lease that was still held"
        events.append("released")
        await repository.release_lease(lease)
        second = await waiter
        assert events == ["released", "acquired"]
        assert second.token != lease.token
        # The waiter now holds it as exclusively as the first holder did.
        with pytest.raises(LeaseTimeoutError):
            await repository.acquire_lease(sid, "agent", ttl=30, wait=0)
        await repository.release_lease(second)

    @_on_fresh_loop
    async def test_expired_lease_is_taken_over_and_fenced(self, repository: SessionRepository) -> None:
        if "lease_expiry" not in repository.capabilities:
            pytest.skip(f"{type(repository).__name__} leases do not expire (released when the holder dies)")
        sid = await _session_with_agent(repository)
        stale = await repository.acquire_lease(sid, "agent", ttl=0.3, wait=0)
        await asyncio.sleep(0.6)
        fresh = await repository.acquire_lease(sid, "agent", ttl=30, wait=0)
        with pytest.raises(LeaseLostError):
            await repository.renew_lease(stale, ttl=30)
        await repository.release_lease(stale)  # must not release the new holder's lease
        with pytest.raises(LeaseTimeoutError):
            await repository.acquire_lease(sid, "agent", ttl=30, wait=0)
        renewed = await repository.renew_lease(fresh, ttl=30)
        await repository.release_lease(renewed)

    # -- TTL (capability "ttl") -----------------------------------------------------------------

    @_on_fresh_loop
    async def test_ttl_session_expires_with_everything_under_it(
        self, ttl_repository: SessionRepository, session_ttl: float
    ) -> None:
        repo = ttl_repository
        sid = await _session_with_agent(repo)
        await repo.append_messages(sid, "agent", [_msg(0), _msg(1, role="assistant")])
        await repo.create_multi_agent(sid, MultiAgentRecord(multi_agent_id="graph"))

        async def gone() -> bool:
            return await repo.read_session(sid) is None

        await _eventually(gone, "a session never written again did not expire", **_ttl_waits(session_ttl))
        assert await repo.read_agent(sid, "agent") is None
        assert await repo.read_messages(sid, "agent") == []
        assert await repo.message_head(sid, "agent") == 0
        assert await repo.read_multi_agent(sid, "graph") is None
        assert sid not in await _listed(repo)
        with pytest.raises(SessionNotFoundError):
            await repo.append_messages(sid, "agent", [_msg(2)])
        # The id is free again, for a session that starts from nothing.
        await repo.create_session(SessionRecord(session_id=sid))
        assert await repo.list_agents(sid) == []

    @_on_fresh_loop
    async def test_ttl_writes_refresh_the_session(self, ttl_repository: SessionRepository, session_ttl: float) -> None:
        repo = ttl_repository
        busy = await _session_with_agent(repo)  # created first: without refreshes it would expire first
        idle = await _session_with_agent(repo)
        head = 0

        async def idle_gone() -> bool:
            nonlocal head
            if await repo.read_session(idle) is None:
                return True
            head = await repo.append_messages(busy, "agent", [_msg(head)])
            return False

        await _eventually(idle_gone, "a session never written again did not expire", **_ttl_waits(session_ttl))
        # Written since `idle` was created, `busy` outlives it, whole.
        assert head > 0
        assert await repo.read_session(busy) is not None
        assert await repo.read_agent(busy, "agent") is not None
        assert [r.message_id for r in await repo.read_messages(busy, "agent")] == list(range(head))

        async def busy_gone() -> bool:
            return await repo.read_session(busy) is None

        # Refreshing is not immortality: once the writes stop, it expires too.
        await _eventually(busy_gone, "a session whose writes stopped did not expire", **_ttl_waits(session_ttl))
        assert await repo.read_messages(busy, "agent") == []
