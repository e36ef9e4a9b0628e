"""What the S3 repository's operations share: key layout, decoding, existence checks, and the
versioned multi-agent records (kept apart to hold ``s3.py`` to one screenful per noun)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from mooring._ids import validate_id
from mooring._threads import run_blocking
from mooring.errors import ConflictError, CorruptRecordError, SessionNotFoundError
from mooring.session._head import gallop_down, gallop_up
from mooring.session._layout import encode
from mooring.session.backends.s3._io import NotFound, PreconditionFailed, S3Io, S3Object
from mooring.session.records import MultiAgentRecord, version_conflict

T = TypeVar("T")


# Listing would cost one request per 1,000 keys of history and cannot start at an offset (ids
# are not zero-padded, so key order is not numeric order); probing by name costs 2 requests
# when the hint is right and about 2·log2(distance) when it is not.
def find_head(io: S3Io, key_of: Callable[[int], str], hint: int | None) -> int:
    """The first missing id, probing ``hint`` (absent) and ``hint - 1`` (present) first."""

    def has(i: int) -> bool:
        return io.exists(key_of(i))

    start = max(hint or 0, 0)
    if start == 0:
        return gallop_up(has, 0) if has(0) else 0
    below, at = io.map(has, [start - 1, start])
    if at:
        return gallop_up(has, start)
    if below:
        return start
    return gallop_down(has, start - 1)


class S3KeyedStore:
    """Base of :class:`mooring.session.backends.s3.repository.S3SessionRepository`; its ``__init__`` sets these."""

    _io: S3Io
    _base: str

    def describe(self) -> str:
        raise NotImplementedError

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        # boto3 blocks; every operation runs in a worker thread so any event loop stays free.
        return await run_blocking(func, *args)

    def _where(self, key: str) -> str:
        return self._io.where(key)

    def _session_dir(self, session_id: str) -> str:
        return f"{self._base}session_{validate_id(session_id, 'session_id')}/"

    def _agent_dir(self, session_id: str, agent_id: str) -> str:
        return f"{self._session_dir(session_id)}agents/agent_{validate_id(agent_id, 'agent_id')}/"

    def _message_key(self, session_id: str, agent_id: str, message_id: int) -> str:
        return f"{self._agent_dir(session_id, agent_id)}messages/message_{message_id}.json"

    def _multi_key(self, session_id: str, multi_agent_id: str) -> str:
        mid = validate_id(multi_agent_id, "multi_agent_id")
        return f"{self._session_dir(session_id)}multi_agents/multi_agent_{mid}/multi_agent.json"

    def _lease_key(self, session_id: str, agent_id: str) -> str:
        return f"{self._session_dir(session_id)}.leases/agent_{validate_id(agent_id, 'agent_id')}.json"

    def _decode(self, key: str, obj: S3Object) -> Any:
        try:
            return json.loads(obj.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptRecordError(
                f"{self._where(key)} is corrupt or truncated ({len(obj.body)} bytes): {exc}"
            ) from exc

    def _require_session(self, session_id: str) -> None:
        if not self._io.exists(f"{self._session_dir(session_id)}session.json"):
            raise SessionNotFoundError(f"session {session_id!r} does not exist in {self.describe()}")

    def _require_agent(self, session_id: str, agent_id: str) -> None:
        if not self._io.exists(f"{self._agent_dir(session_id, agent_id)}agent.json"):
            self._require_session(session_id)
            raise SessionNotFoundError(f"agent {agent_id!r} does not exist in session {session_id!r}")

    # -- multi-agent records ------------------------------------------------------------------

    def _create_multi(self, session_id: str, record: MultiAgentRecord) -> MultiAgentRecord:
        self._require_session(session_id)
        stored = record.first()
        key = self._multi_key(session_id, record.multi_agent_id)
        try:
            self._io.put_new(key, encode(stored.to_dict()))
        except PreconditionFailed:
            raise ConflictError(f"multi-agent {record.multi_agent_id!r} already exists", version=1) from None
        return stored

    async def create_multi_agent(self, session_id: str, record: MultiAgentRecord) -> MultiAgentRecord:
        validate_id(session_id, "session_id")
        validate_id(record.multi_agent_id, "multi_agent_id")
        return await self._run(self._create_multi, session_id, record)

    def _get_multi(self, session_id: str, multi_agent_id: str) -> tuple[MultiAgentRecord, str] | None:
        key = self._multi_key(session_id, multi_agent_id)
        obj = self._io.get(key)
        if obj is None:
            return None
        return MultiAgentRecord.from_dict(self._decode(key, obj), self._where(key)), obj.etag

    async def read_multi_agent(self, session_id: str, multi_agent_id: str) -> MultiAgentRecord | None:
        validate_id(session_id, "session_id")
        validate_id(multi_agent_id, "multi_agent_id")
        found = await self._run(self._get_multi, session_id, multi_agent_id)
        return found[0] if found else None

    def _update_multi(self, session_id: str, record: MultiAgentRecord, expected_version: int) -> MultiAgentRecord:
        found = self._get_multi(session_id, record.multi_agent_id)
        if found is None:
            self._require_session(session_id)
            raise ConflictError(f"multi-agent {record.multi_agent_id!r} does not exist", version=0)
        current, etag = found
        if current.version != expected_version:
            raise version_conflict(f"multi-agent {record.multi_agent_id!r}", current.version, expected_version)
        new = record.successor(expected_version, current.created_at)
        try:
            self._io.put_replace(self._multi_key(session_id, record.multi_agent_id), encode(new.to_dict()), etag)
        except (PreconditionFailed, NotFound):
            now = self._get_multi(session_id, record.multi_agent_id)
            stored = now[0].version if now else 0
            raise ConflictError(
                f"multi-agent {record.multi_agent_id!r} changed concurrently (now version {stored})", version=stored
            ) from None
        return new

    async def update_multi_agent(
        self, session_id: str, record: MultiAgentRecord, *, expected_version: int
    ) -> MultiAgentRecord:
        validate_id(session_id, "session_id")
        validate_id(record.multi_agent_id, "multi_agent_id")
        return await self._run(self._update_multi, session_id, record, expected_version)
