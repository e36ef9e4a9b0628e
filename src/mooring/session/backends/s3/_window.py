"""The S3 window object: the newest message records of an agent in one small object.

A windowed restore from S3 would otherwise GET every message of the window, one request each.
The window object (``session_<id>/.windows/agent_<id>.json``, beside the Strands tree, in a
folder no Strands reader lists) holds copies of the newest ``window_messages`` records, so a
restore is the agent record, this object and one probe that its head is still the head.

It is advisory, like the head hint: every message stays in its own ``message_<N>.json``, which
remains the truth, and a window object that cannot be trusted is ignored. It is trusted only when

- the slot at its ``head`` is still free (nobody appended after it was written), and
- it names the ETag of ``agent.json`` that the restore just read (a writer that does not keep
  the window, such as Strands' ``S3SessionManager``, rewrites ``agent.json`` on every message).

Writers keep it consistent:

- it is written once per turn, when the invocation lease is released, from what this process
  read and appended under the lease; the PUT is conditional on the ETag last seen, and when
  another process wrote it meanwhile, ours is written only if both agree on every message they
  share (otherwise this process's copy may be stale and nothing is written);
- before a message is rewritten (redaction) or removed (undo), the window object is deleted, so
  a crash between the two never leaves a window that disagrees with the messages.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mooring._json import loads
from mooring.errors import CorruptRecordError
from mooring.session.backends.s3._io import NotFound, PreconditionFailed, S3Io
from mooring.session.records import FORMAT_VERSION, MOORING_KEY, MessageRecord

logger = logging.getLogger(__name__)

#: Messages kept in a window object by default: SlidingWindowConversationManager's default
#: window (40) plus a few turns of slack.
DEFAULT_WINDOW_MESSAGES = 64
#: Records are dropped from the old end until the object is at most this big.
MAX_WINDOW_BYTES = 1 << 20

Key = tuple[str, str]


@dataclass
class _Tail:
    """The newest records this process knows, dense from ``first``."""

    first: int
    records: list[MessageRecord] = field(default_factory=list)
    dirty: bool = False
    #: messages of another writer were read since our last write: it wrote the window since
    foreign: bool = False

    @property
    def head(self) -> int:
        return self.first + len(self.records)


class S3Windows:
    """Window objects of one repository: the process-side copy and the stored object."""

    def __init__(self, io: S3Io, key_of: Callable[[str, str], str], *, window_messages: int) -> None:
        self.io = io
        self.key_of = key_of
        self.window_messages = window_messages
        self._tails: dict[Key, _Tail] = {}
        self._etags: dict[Key, str | None] = {}  # of the window object; None: believed absent
        self._agent_etags: dict[Key, str] = {}

    @property
    def enabled(self) -> bool:
        return self.window_messages > 0

    # -- what this process saw ----------------------------------------------------------------

    def agent_seen(self, key: Key, etag: str) -> None:
        self._agent_etags[key] = etag

    def read(self, key: Key, records: list[MessageRecord], head: int, *, stored: bool) -> None:
        """A window ``records`` ending at ``head`` was read (``stored``: from the window object,
        which then needs no rewrite; otherwise the next flush stores it)."""
        if not self.enabled:
            return
        kept = self._trim(list(records))
        self._tails[key] = _Tail(first=head - len(kept), records=kept, dirty=not stored)

    def caught_up(self, key: Key, records: list[MessageRecord]) -> None:
        """Messages another writer stored were read; they extend our copy when contiguous."""
        tail = self._tails.get(key)
        if tail is None or not records or records[0].message_id != tail.head:
            return
        if records[-1].message_id - records[0].message_id + 1 != len(records):
            return
        kept = self._trim(tail.records + records)
        self._tails[key] = _Tail(
            first=records[-1].message_id + 1 - len(kept), records=kept, dirty=tail.dirty, foreign=True
        )

    def appended(self, key: Key, records: list[MessageRecord]) -> None:
        if not self.enabled or not records:
            return
        tail = self._tails.get(key)
        foreign = False
        if tail is not None and records[0].message_id == tail.head:
            kept, foreign = self._trim(tail.records + records), tail.foreign
        else:
            kept = self._trim(list(records))
        self._tails[key] = _Tail(
            first=records[-1].message_id + 1 - len(kept), records=kept, dirty=True, foreign=foreign
        )

    def before_edit(self, key: Key) -> None:
        """A message is about to be rewritten or removed: the stored window goes first."""
        if not self.enabled:
            return
        self.io.delete(self.key_of(*key))
        self._etags[key] = None

    def edited(self, key: Key, record: MessageRecord) -> None:
        tail = self._tails.get(key)
        if tail is None:
            return
        index = record.message_id - tail.first
        if 0 <= index < len(tail.records):
            tail.records[index] = record
            tail.dirty = True

    def truncated(self, key: Key, new_head: int) -> None:
        tail = self._tails.get(key)
        if tail is None:
            return
        if new_head <= tail.first:
            del self._tails[key]
            return
        tail.records = tail.records[: new_head - tail.first]
        tail.dirty = True

    def forget_session(self, session_id: str) -> None:
        for store in (self._tails, self._etags, self._agent_etags):
            for key in [k for k in store if k[0] == session_id]:
                del store[key]

    def _trim(self, records: list[MessageRecord]) -> list[MessageRecord]:
        return records[-self.window_messages :] if len(records) > self.window_messages else records

    # -- the stored object --------------------------------------------------------------------

    def load(self, key: Key, start: int) -> tuple[int, int, list[MessageRecord], str] | None:
        """``(first, head, records, etag)`` of a stored window usable for ``start``, else None."""
        if not self.enabled:
            return None
        agent_etag = self._agent_etags.get(key)
        if agent_etag is None:
            return None
        where = self.io.where(self.key_of(*key))
        obj = self.io.get(self.key_of(*key))
        if obj is None:
            self._etags[key] = None
            return None
        self._etags[key] = obj.etag
        try:
            first, head, records, stored_agent_etag = _decode(obj.body, where)
        except CorruptRecordError as exc:
            logger.warning("%s | ignoring an unreadable window object: %s", where, exc)
            return None
        if stored_agent_etag != agent_etag or start > head:
            return None
        return first, head, records, obj.etag

    def flush(self, key: Key) -> None:
        """Store our copy if it changed; never over a window that disagrees with it."""
        tail = self._tails.get(key)
        if tail is None or not tail.dirty or not self.enabled:
            return
        agent_etag = self._agent_etags.get(key)
        if agent_etag is None or not tail.records:
            return
        object_key = self.key_of(*key)
        body = self._encode(tail, agent_etag)
        etag = self._etags.get(key)
        new_etag: str | None = None
        try:
            if tail.foreign:
                # Whoever wrote the messages we read wrote the window after us: compare first.
                new_etag = self._write_over_current(key, tail, body, knew=bool(etag))
            elif etag:
                new_etag = self.io.put_replace(object_key, body, etag)
            else:
                new_etag = self.io.put_new(object_key, body)
        except NotFound:
            pass  # deleted since we saw it: a message was edited, and our copy may predate that
        except PreconditionFailed:
            try:
                new_etag = self._write_over_current(key, tail, body, knew=bool(etag))
            except (PreconditionFailed, NotFound):
                new_etag = None
        if new_etag is None:
            self._tails.pop(key, None)
            return
        self._etags[key] = new_etag
        tail.dirty = tail.foreign = False

    def _write_over_current(self, key: Key, tail: _Tail, body: bytes, *, knew: bool) -> str | None:
        """Write ours over the stored window if every message both hold agrees, else None."""
        object_key = self.key_of(*key)
        current = self.io.get(object_key)
        if current is None:
            # Gone since we saw it means an edit our copy may predate; never seen: ours is new.
            return None if knew else self.io.put_new(object_key, body)
        try:
            _, head, records, _ = _decode(current.body, self.io.where(object_key))
        except CorruptRecordError:
            return self.io.put_replace(object_key, body, current.etag)
        if head > tail.head or not _agree(records, tail):
            return None  # written from messages this process has not seen: ours may be stale
        return self.io.put_replace(object_key, body, current.etag)

    def _encode(self, tail: _Tail, agent_etag: str) -> bytes:
        dicts = [r.to_dict() for r in tail.records]
        while True:
            data = {
                "first": tail.head - len(dicts),
                "head": tail.head,
                "agent_etag": agent_etag,
                "messages": dicts,
                MOORING_KEY: {"format": FORMAT_VERSION},
            }
            body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            if len(body) <= MAX_WINDOW_BYTES or len(dicts) <= 1:
                return body
            dicts = dicts[len(dicts) // 4 or 1 :]


def _decode(body: bytes, where: str) -> tuple[int, int, list[MessageRecord], str | None]:
    try:
        data: Any = loads(body)
        first, head, raw = int(data["first"]), int(data["head"]), data["messages"]
        agent_etag = data.get("agent_etag")
    except (ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise CorruptRecordError(f"{where}: {exc}") from exc
    if not isinstance(raw, list) or first < 0 or head != first + len(raw):
        raise CorruptRecordError(f"{where}: the messages do not span first..head")
    records = [
        MessageRecord.from_dict(d, f"{where} message {first + i}", expected_id=first + i) for i, d in enumerate(raw)
    ]
    return first, head, records, agent_etag if isinstance(agent_etag, str) else None


def _agree(stored: list[MessageRecord], tail: _Tail) -> bool:
    ours = {r.message_id: r for r in tail.records}
    return all(r.to_dict() == ours[r.message_id].to_dict() for r in stored if r.message_id in ours)
