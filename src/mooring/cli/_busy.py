"""Waiting for a session that another process is using, visibly.

Before a chat turn the lease of (session, agent) is probed. When another process holds it,
the chat says who (when the store can tell: the pid and command line on this machine) and
waits with a live indicator on a terminal, or one line on stderr otherwise. Ctrl-C stops
waiting; nothing was sent, so the session is as it was. The turn itself then takes the lease
as usual, so a process that slips in between is waited for by the session manager.
"""

from __future__ import annotations

import time
from typing import TextIO

from mooring.cli._output import console, is_tty
from mooring.cli._stores import lease_holder
from mooring.errors import LeaseTimeoutError, MooringError
from mooring.session.repository import SessionRepository

_PROBE_TTL = 30.0
_POLL = 0.5  # seconds one acquire attempt waits before the indicator is refreshed


class WaitAbandoned(Exception):
    """Ctrl-C while waiting for a busy session: the prompt was not sent."""


async def _try(repository: SessionRepository, session_id: str, agent_id: str, wait: float) -> bool:
    """Take and give back the lease: True when it was free within ``wait`` seconds."""
    try:
        lease = await repository.acquire_lease(session_id, agent_id, ttl=_PROBE_TTL, wait=wait)
    except LeaseTimeoutError:
        return False
    except MooringError:
        return True  # no session yet, a read-only store...: the turn itself says what is wrong
    await repository.release_lease(lease)  # a probe never keeps the lease
    return True


async def wait_until_free(
    repository: SessionRepository, session_id: str, agent_id: str, *, wait: float, stderr: TextIO
) -> None:
    """Return once nobody holds the (session, agent) lease.

    ``LeaseTimeoutError`` (naming the holder) after ``wait`` seconds. ``KeyboardInterrupt``
    and cancellation propagate; the probe never keeps the lease.
    """
    if await _try(repository, session_id, agent_id, 0):
        return
    holder = lease_holder(repository, session_id, agent_id) or "another process"
    started = time.monotonic()
    deadline = started + wait
    headline = f"session {session_id!r} (agent {agent_id!r}) is busy: {holder} is running a turn on it"
    err = console(stderr)
    status = None
    if is_tty(stderr):
        stderr.write(f"{headline}; waiting up to {wait:g}s (Ctrl-C stops waiting)\n")
        stderr.flush()
        if not err.is_dumb_terminal:
            status = err.status("waiting…")
            status.start()
    else:
        stderr.write(f"mooring: {headline}; waiting up to {wait:g}s for it\n")
        stderr.flush()
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LeaseTimeoutError(
                    f"{headline}; gave up after waiting {wait:g}s (raise --wait, or try again later)"
                )
            if await _try(repository, session_id, agent_id, min(_POLL, remaining)):
                return
            if status is not None:
                waited = int(time.monotonic() - started)
                status.update(f"waiting for {session_id!r}: {waited}s of {wait:g}s… (Ctrl-C stops waiting)")
    finally:
        if status is not None:
            status.stop()
