"""Stored records, in the Strands Agents repository format plus ignorable mooring fields.

Every record round-trips unknown keys (``extra``) so a reader never drops what a newer
writer stored. mooring's own bookkeeping lives under one ``"_mooring"`` key, which Strands'
readers ignore.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from mooring._json import decode_bytes, encode_bytes
from mooring.errors import ConfigurationError, ConflictError, CorruptRecordError
from mooring.types import Message

FORMAT_VERSION = 1
MOORING_KEY = "_mooring"
_ROLES = ("user", "assistant")
_MESSAGE_FIELDS = frozenset({"message", "message_id", "redact_message", "created_at", "updated_at"})


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


#: How many messages the agent record's head hint and ``removed_message_count`` may trail the
#: stored messages by before the session manager rewrites the record. 24 keeps a 40-message
#: window plus the lag inside the 64 newest messages the S3 backend's window object holds.
ADVISORY_LAG = 24

#: Field of the last message record of each append: the conversation manager's
#: ``removed_message_count`` when it was written (a reader of older records ignores it).
WINDOW_START = "window_start"


@dataclass(kw_only=True)
class SessionRecord:
    session_id: str
    session_type: str = "AGENT"
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.extra)
        data.update(
            session_id=self.session_id,
            session_type=self.session_type,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )
        data[MOORING_KEY] = {"format": FORMAT_VERSION}
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str) -> SessionRecord:
        _require(data, where, ("session_id",))
        known = {"session_id", "session_type", "created_at", "updated_at", MOORING_KEY}
        return cls(
            session_id=str(data["session_id"]),
            session_type=str(data.get("session_type", "AGENT")),
            created_at=str(data.get("created_at", "")),
            updated_at=str(data.get("updated_at", data.get("created_at", ""))),
            extra={k: v for k, v in data.items() if k not in known},
        )


@dataclass(kw_only=True)
class AgentRecord:
    """``agent.json``. ``version`` counts committed updates (compare-and-set); 0 means never
    written by mooring. ``next_message_id`` is a hint of the message head, verified on read."""

    agent_id: str
    state: dict[str, Any] = field(default_factory=dict)
    conversation_manager_state: dict[str, Any] = field(default_factory=dict)
    internal_state: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    version: int = 0
    next_message_id: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.extra)
        data.update(
            agent_id=self.agent_id,
            state=self.state,
            conversation_manager_state=self.conversation_manager_state,
            _internal_state=self.internal_state,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )
        data[MOORING_KEY] = {
            "format": FORMAT_VERSION,
            "version": self.version,
            "next_message_id": self.next_message_id,
        }
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str) -> AgentRecord:
        _require(data, where, ("agent_id",))
        ours = data.get(MOORING_KEY) or {}
        if not isinstance(ours, dict):
            raise CorruptRecordError(f"{where}: {MOORING_KEY} is not an object")
        known = {
            "agent_id",
            "state",
            "conversation_manager_state",
            "_internal_state",
            "created_at",
            "updated_at",
            MOORING_KEY,
        }
        state = data.get("state") or {}
        cm_state = data.get("conversation_manager_state") or {}
        if not isinstance(state, dict) or not isinstance(cm_state, dict):
            raise CorruptRecordError(f"{where}: state and conversation_manager_state must be objects")
        return cls(
            agent_id=str(data["agent_id"]),
            state=state,
            conversation_manager_state=cm_state,
            internal_state=data.get("_internal_state") or {},
            created_at=str(data.get("created_at", "")),
            updated_at=str(data.get("updated_at", "")),
            version=int(ours.get("version", 0)),
            next_message_id=int(ours.get("next_message_id", 0)),
            extra={k: v for k, v in data.items() if k not in known},
        )

    def copy(self) -> AgentRecord:
        return copy.deepcopy(self)

    def successor(self, expected_version: int, created_at: str | None) -> AgentRecord:
        """This record as the compare-and-set update of a stored copy at ``expected_version``
        (keeping the stored ``created_at`` when there is one)."""
        new = self.copy()
        new.version = expected_version + 1
        new.created_at = created_at or new.created_at
        new.updated_at = now_iso()
        return new


@dataclass(kw_only=True)
class MessageRecord:
    """``message_<N>.json``. When ``redact_message`` is set it is what the model sees."""

    message_id: int
    message: Message
    redact_message: Message | None = None
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_message(self, *, copy_message: bool = True) -> Message:
        """What the model sees: the redacted form when there is one."""
        message = self.redact_message if self.redact_message is not None else self.message
        return copy.deepcopy(message) if copy_message else message

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.extra)
        data.update(
            message=encode_bytes(self.message),
            message_id=self.message_id,
            redact_message=encode_bytes(self.redact_message) if self.redact_message is not None else None,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )
        return data

    @classmethod
    def from_dict(
        cls, data: Any, where: str, expected_id: int | None = None, *, has_bytes: bool = True
    ) -> MessageRecord:
        """Decode a stored message record; ``has_bytes=False`` skips the bytes-decoding walk
        (the caller saw no bytes marker in the raw document)."""
        # This runs once per restored message, so the common case stays on plain type checks.
        if type(data) is not dict or "message" not in data or "message_id" not in data:
            _require(data, where, ("message", "message_id"))
        message = data["message"]
        if type(message) is not dict or message.get("role") not in _ROLES or type(message.get("content")) is not list:
            raise CorruptRecordError(f"{where}: 'message' is not a user/assistant message with a content list")
        message_id = data["message_id"]
        if type(message_id) is not int:
            raise CorruptRecordError(f"{where}: message_id {message_id!r} is not an integer")
        if expected_id is not None and message_id != expected_id:
            raise CorruptRecordError(f"{where}: holds message_id {message_id}, expected {expected_id}")
        redact = data.get("redact_message")
        if has_bytes:
            message = decode_bytes(message)
            redact = decode_bytes(redact) if redact is not None else None
        exact = len(data) == len(_MESSAGE_FIELDS) and data.keys() == _MESSAGE_FIELDS
        return cls(
            message_id=message_id,
            message=message,
            redact_message=redact,
            created_at=str(data.get("created_at", "")),
            updated_at=str(data.get("updated_at", "")),
            extra={} if exact else {k: v for k, v in data.items() if k not in _MESSAGE_FIELDS},
        )


@dataclass(kw_only=True)
class MultiAgentRecord:
    """``multi_agent.json``: an orchestrator's serialized state, versioned like the agent record."""

    multi_agent_id: str
    state: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.state)
        data["id"] = self.multi_agent_id
        data[MOORING_KEY] = {
            "format": FORMAT_VERSION,
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        return data

    def first(self) -> MultiAgentRecord:
        """This record as created: version 1."""
        return MultiAgentRecord(
            multi_agent_id=self.multi_agent_id,
            state=copy.deepcopy(self.state),
            version=1,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )

    def successor(self, expected_version: int, created_at: str | None) -> MultiAgentRecord:
        """This record as the compare-and-set update of a stored copy at ``expected_version``."""
        return MultiAgentRecord(
            multi_agent_id=self.multi_agent_id,
            state=copy.deepcopy(self.state),
            version=expected_version + 1,
            created_at=created_at or self.created_at,
            updated_at=now_iso(),
        )

    @classmethod
    def from_dict(cls, data: Any, where: str) -> MultiAgentRecord:
        _require(data, where, ("id",))
        ours = data.get(MOORING_KEY) or {}
        state = {k: v for k, v in data.items() if k not in ("id", MOORING_KEY)}
        return cls(
            multi_agent_id=str(data["id"]),
            state=state,
            version=int(ours.get("version", 0)),
            created_at=str(ours.get("created_at", "")),
            updated_at=str(ours.get("updated_at", "")),
        )


@dataclass(kw_only=True)
class SessionPage:
    """One page of :meth:`SessionRepository.list_sessions`; pass ``next_cursor`` to continue."""

    sessions: list[SessionRecord]
    next_cursor: str | None = None


# -- pages of sessions: cursors for the backends that list everything and cut a page ------------
def encode_cursor(record: SessionRecord) -> str:
    raw = json.dumps([record.created_at, record.session_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, session_id = json.loads(base64.urlsafe_b64decode(padded))
        return str(created_at), str(session_id)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"invalid session listing cursor {cursor!r}") from exc


def sort_key(record: SessionRecord) -> tuple[str, str]:
    return (record.created_at, record.session_id)


def page_sessions(records: list[SessionRecord], *, cursor: str | None, limit: int) -> SessionPage:
    """Order newest first and cut one page after ``cursor`` (for backends that list everything)."""
    if limit < 1:
        raise ConfigurationError(f"limit must be at least 1, got {limit}")
    records = sorted(records, key=sort_key, reverse=True)
    if cursor is not None:
        after = decode_cursor(cursor)
        records = [r for r in records if sort_key(r) < after]
    page = records[:limit]
    next_cursor = encode_cursor(page[-1]) if len(records) > limit else None
    return SessionPage(sessions=page, next_cursor=next_cursor)


def check_append(session_id: str, agent_id: str, messages: Sequence[MessageRecord], head: int) -> None:
    """``ConflictError(head=head)`` unless ``messages`` continue exactly at ``head``, densely."""
    for offset, record in enumerate(messages):
        if record.message_id != head + offset:
            raise ConflictError(
                f"message id {record.message_id} is not the next free id {head + offset} "
                f"for agent {agent_id!r} in session {session_id!r}",
                head=head,
            )


def version_conflict(what: str, stored: int, expected: int) -> ConflictError:
    """The error of a compare-and-set that found version ``stored`` where it expected ``expected``."""
    return ConflictError(f"{what} is at version {stored}, not {expected}", version=stored)


def _require(data: Any, where: str, keys: tuple[str, ...]) -> None:
    if not isinstance(data, dict):
        raise CorruptRecordError(f"{where}: expected a JSON object, found {type(data).__name__}")
    missing = [k for k in keys if k not in data]
    if missing:
        raise CorruptRecordError(f"{where}: missing field(s) {', '.join(missing)}")
