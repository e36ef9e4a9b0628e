"""Where S3 records live: the Strands key layout under a prefix, decoding, existence checks and
the head search (probing keys by name, never listing)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from mooring._json import loads
from mooring.errors import CorruptRecordError, SessionNotFoundError
from mooring.session._head import gallop_down, gallop_up
from mooring.session._layout import (
    AGENT_FILE,
    MULTI_AGENT_FILE,
    SESSION_FILE,
    agent_name,
    agent_parts,
    message_name,
    messages_parts,
    multi_agent_parts,
    session_name,
)
from mooring.session.backends.s3._io import S3Io, S3Object


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
    """Base of :class:`S3SessionRepository`; its ``__init__`` sets these."""

    _io: S3Io
    _base: str

    def describe(self) -> str:
        raise NotImplementedError

    def _where(self, key: str) -> str:
        return self._io.where(key)

    def _session_dir(self, session_id: str) -> str:
        return f"{self._base}{session_name(session_id)}/"

    def _agent_dir(self, session_id: str, agent_id: str) -> str:
        return f"{self._base}{'/'.join(agent_parts(session_id, agent_id))}/"

    def _message_key(self, session_id: str, agent_id: str, message_id: int) -> str:
        return f"{self._base}{'/'.join(messages_parts(session_id, agent_id))}/{message_name(message_id)}"

    def _multi_key(self, session_id: str, multi_agent_id: str) -> str:
        return f"{self._base}{'/'.join(multi_agent_parts(session_id, multi_agent_id))}/{MULTI_AGENT_FILE}"

    def _lease_key(self, session_id: str, agent_id: str) -> str:
        # Beside the Strands tree, in a folder no Strands reader lists.
        return f"{self._session_dir(session_id)}.leases/{agent_name(agent_id)}.json"

    def _window_key(self, session_id: str, agent_id: str) -> str:
        return f"{self._session_dir(session_id)}.windows/{agent_name(agent_id)}.json"

    def _decode(self, key: str, obj: S3Object) -> Any:
        try:
            return loads(obj.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptRecordError(
                f"{self._where(key)} is corrupt or truncated ({len(obj.body)} bytes): {exc}"
            ) from exc

    def _require_session(self, session_id: str) -> None:
        if not self._io.exists(f"{self._session_dir(session_id)}{SESSION_FILE}"):
            raise SessionNotFoundError(f"session {session_id!r} does not exist in {self.describe()}")

    def _require_agent(self, session_id: str, agent_id: str) -> None:
        if not self._io.exists(f"{self._agent_dir(session_id, agent_id)}{AGENT_FILE}"):
            self._require_session(session_id)
            raise SessionNotFoundError(f"agent {agent_id!r} does not exist in session {session_id!r}")
