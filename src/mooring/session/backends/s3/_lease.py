"""The S3 invocation lease: one small object per (session, agent), changed only conditionally.

The object (``session_<id>/.leases/agent_<id>.json``) holds ``{token, expires_at, ttl, holder}``:

- acquire: ``PutObject`` with ``If-None-Match: *``. If it exists and its ``expires_at`` has
  passed, take it over with ``If-Match`` on the ETag just read, so of two processes taking
  over the same expired lease only one succeeds;
- renew: ``PutObject`` with ``If-Match`` on our last ETag (a stale handle of our own lease is
  re-read and accepted when the token is still ours);
- release: ``DeleteObject`` with ``If-Match``, so a holder whose lease expired and was taken
  over never deletes its successor's lease.

``expires_at`` is the holder's wall clock. Hosts whose clocks disagree may see a lease expire
early or late; that can only let two invocations overlap, never lose data, because every
append is conditional on the message id (fencing). ``clock_skew`` adds a margin where clocks
are known to drift.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid

from mooring.errors import LeaseLostError
from mooring.session._layout import encode
from mooring.session.backends.s3._io import NotFound, PreconditionFailed, S3Io, S3Object
from mooring.session.records import FORMAT_VERSION, MOORING_KEY
from mooring.session.repository import Lease

logger = logging.getLogger(__name__)


class S3Leases:
    """Lease operations over :class:`S3Io`; synchronous (the repository runs them in threads)."""

    def __init__(self, io: S3Io, *, clock_skew: float = 0.0) -> None:
        self.io = io
        self.clock_skew = clock_skew
        # key -> the latest expiry read from a busy lease. While it lies ahead, a refused
        # create means a live holder (that one, or a later one, which was created after it), so
        # a waiter polls with one request instead of two; takeover always reads the lease first.
        self._busy_until: dict[str, float] = {}

    @staticmethod
    def _body(token: str, ttl: float) -> tuple[bytes, float]:
        expires_at = time.time() + ttl
        data = {
            "token": token,
            "expires_at": expires_at,
            "ttl": ttl,
            "holder": f"{socket.gethostname()}:{os.getpid()}",
            MOORING_KEY: {"format": FORMAT_VERSION},
        }
        return encode(data), expires_at

    def _holder(self, key: str, obj: S3Object) -> tuple[str | None, float]:
        """(token, expires_at) of a stored lease; an unreadable one counts as expired."""
        try:
            data = json.loads(obj.body)
            return str(data["token"]), float(data["expires_at"])
        except (ValueError, TypeError, KeyError) as exc:
            logger.warning("lease=<%s> | unreadable lease object, treating it as expired: %s", self.io.where(key), exc)
            return None, 0.0

    def _current_etag(self, key: str, token: str) -> str | None:
        """The ETag of the stored lease if it is still ``token``'s, else None."""
        current = self.io.get(key)
        if current is None or self._holder(key, current)[0] != token:
            return None
        return current.etag

    def try_acquire(self, key: str, session_id: str, agent_id: str, ttl: float) -> Lease | None:
        """The lease, or None while someone else holds it unexpired."""
        token = uuid.uuid4().hex

        def granted(etag: str, expires_at: float) -> Lease:
            return Lease(session_id=session_id, agent_id=agent_id, token=token, expires_at=expires_at, handle=etag)

        for _ in range(3):
            body, expires_at = self._body(token, ttl)
            try:
                lease = granted(self.io.put_new(key, body), expires_at)
            except PreconditionFailed:
                pass
            else:
                self._busy_until.pop(key, None)
                return lease
            if self._busy_until.get(key, 0.0) + self.clock_skew > time.time():
                return None
            current = self.io.get(key)
            if current is None:
                continue  # released in between: try to create it again
            _, held_until = self._holder(key, current)
            if held_until + self.clock_skew > time.time():
                self._busy_until[key] = held_until
                return None
            body, expires_at = self._body(token, ttl)
            try:
                etag = self.io.put_replace(key, body, current.etag)
            except (PreconditionFailed, NotFound):
                continue  # another process moved first: look again
            logger.info("session_id=<%s>, agent_id=<%s> | took over an expired lease", session_id, agent_id)
            return granted(etag, expires_at)
        return None

    def renew(self, key: str, lease: Lease, ttl: float) -> Lease:
        etag = lease.handle if isinstance(lease.handle, str) else self._current_etag(key, lease.token)
        for _ in range(3):
            if etag is None:
                break
            body, expires_at = self._body(lease.token, ttl)
            try:
                new_etag = self.io.put_replace(key, body, etag)
            except NotFound:
                break
            except PreconditionFailed:
                etag = self._current_etag(key, lease.token)
                continue
            return Lease(
                session_id=lease.session_id,
                agent_id=lease.agent_id,
                token=lease.token,
                expires_at=expires_at,
                handle=new_etag,
            )
        raise LeaseLostError(
            f"lease on session {lease.session_id!r}, agent {lease.agent_id!r} was lost: it expired and another "
            f"invocation took it over ({self.io.where(key)})"
        )

    def release(self, key: str, lease: Lease) -> None:
        etag = lease.handle if isinstance(lease.handle, str) else None
        for _ in range(3):
            if etag is None:
                etag = self._current_etag(key, lease.token)
                if etag is None:
                    return  # gone, or someone else's now: nothing of ours to release
            try:
                self.io.delete_if(key, etag)
                return
            except NotFound:
                return
            except PreconditionFailed:
                etag = None  # renewed with a handle we do not have, or taken over: look again
