"""Reading messages from S3 by name, concurrently: a range, and a restore's window (from the
window object when it can be trusted, else by GETs of each message and a head probe)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mooring.session.backends.s3._keys import S3KeyedStore
from mooring.session.backends.s3._window import S3Windows
from mooring.session.records import MessageRecord

_MAX_WAVE = 1000


class S3Reads(S3KeyedStore):
    """Base of :class:`S3SessionRepository`; its ``__init__`` sets ``_windows``."""

    _windows: S3Windows

    if TYPE_CHECKING:

        def _message_head(self, session_id: str, agent_id: str, hint: int | None) -> int: ...

    def _read_messages(self, session_id: str, agent_id: str, start: int, end: int | None) -> list[MessageRecord]:
        start = max(start, 0)
        if end is not None and end <= start:
            return []

        def fetch(message_id: int) -> MessageRecord | None:
            key = self._message_key(session_id, agent_id, message_id)
            obj = self._io.get(key)
            if obj is None:
                return None
            return MessageRecord.from_dict(self._decode(key, obj), self._where(key), expected_id=message_id)

        out: list[MessageRecord] = []
        # A named range is fetched at once; an open one in growing waves, until an id is missing.
        wave = min(end - start, _MAX_WAVE) if end is not None else self._io.max_concurrency
        next_id = start
        while end is None or next_id < end:
            stop = next_id + wave if end is None else min(next_id + wave, end)
            for record in self._io.map(fetch, range(next_id, stop)):
                if record is None:
                    self._windows.caught_up((session_id, agent_id), out)
                    return out
                out.append(record)
            next_id = stop
            if end is None:
                wave = min(wave * 2, _MAX_WAVE)
        self._windows.caught_up((session_id, agent_id), out)
        return out

    def _read_window(
        self, session_id: str, agent_id: str, start: int, head_hint: int | None
    ) -> tuple[list[MessageRecord], int]:
        start = max(start, 0)
        found = self._stored_window(session_id, agent_id, start)
        if found is not None:
            return found
        if head_hint is not None and head_hint > 0 and start < head_hint <= start + _MAX_WAVE:
            found = self._probe_window(session_id, agent_id, start, head_hint)
        if found is None:
            found = super()._read_window(session_id, agent_id, start, head_hint)  # type: ignore[misc]
        self._windows.read((session_id, agent_id), *found, stored=False)
        return found

    def _stored_window(self, session_id: str, agent_id: str, start: int) -> tuple[list[MessageRecord], int] | None:
        """The window from the window object, in one more concurrent round: the probe that its
        head is free, plus a GET of each message older than the object keeps. None if unusable."""
        key = (session_id, agent_id)
        loaded = self._windows.load(key, start)
        if loaded is None:
            return None
        first, head, kept, _ = loaded

        def fetch(i: int) -> MessageRecord | bool | None:
            message_key = self._message_key(session_id, agent_id, i)
            if i == head:
                return self._io.exists(message_key)
            obj = self._io.get(message_key)
            if obj is None:
                return None
            return MessageRecord.from_dict(self._decode(message_key, obj), self._where(message_key), expected_id=i)

        *older, at_head = self._io.map(fetch, [*range(start, first), head])
        if at_head is not False or any(not isinstance(r, MessageRecord) for r in older):
            return None
        records = [r for r in older if isinstance(r, MessageRecord)] + kept[max(start - first, 0) :]
        self._windows.read(key, records, head, stored=True)
        return records, head

    def _probe_window(
        self, session_id: str, agent_id: str, start: int, hint: int
    ) -> tuple[list[MessageRecord], int] | None:
        """One concurrent round: the window ``[start, hint)`` and a probe that ``hint`` is free.

        When every message is there and the slot at the hint is free, the hint is the head and
        the window is read: 1 request per message plus 1. Otherwise None (the caller searches).
        """

        def key_of(i: int) -> str:
            return self._message_key(session_id, agent_id, i)

        def fetch(i: int) -> MessageRecord | bool | None:
            if i == hint:
                return self._io.exists(key_of(i))
            obj = self._io.get(key_of(i))
            if obj is None:
                return None
            return MessageRecord.from_dict(self._decode(key_of(i), obj), self._where(key_of(i)), expected_id=i)

        outcomes = self._io.map(fetch, range(start, hint + 1))
        *window, at_hint = outcomes
        if at_hint is not False or any(not isinstance(r, MessageRecord) for r in window):
            return None
        return [r for r in window if isinstance(r, MessageRecord)], hint
