"""Export a session to JSON Lines and import it back, on any backend.

The export format is JSON Lines, one record per line:

.. code-block:: text

    {"type": "mooring-export", "version": 1, "session_id": ..., "exported_at": ..., "source": ...}
    {"type": "session", "record": {...session.json...}}
    {"type": "agent", "agent_id": ..., "messages": N, "record": {...agent.json...}}
    {"type": "message", "agent_id": ..., "record": {...message_<id>.json...}}    (N lines, ids 0..N-1)
    {"type": "multi_agent", "record": {...multi_agent.json...}}
    {"type": "end", "agents": A, "messages": M, "multi_agents": K}

Records use the stored (Strands-compatible) JSON shapes. The ``end`` line lets an import
tell a complete export from a truncated one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from mooring._ids import validate_id
from mooring.errors import ConflictError, CorruptRecordError, SessionNotFoundError
from mooring.session.ops import (
    _BATCH,
    CopyReport,
    SessionSource,
    _copy_into,
    _remove_if_created,
    _require_dense,
    describe,
    list_multi_agent_ids,
)
from mooring.session.records import AgentRecord, MessageRecord, MultiAgentRecord, SessionRecord, now_iso
from mooring.session.repository import SessionRepository

EXPORT_TYPE = "mooring-export"
EXPORT_VERSION = 1


@dataclass(kw_only=True)
class ExportSummary:
    session_id: str
    agents: int = 0
    messages: int = 0
    multi_agents: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def counts(self) -> dict[str, int]:
        return {"agents": self.agents, "messages": self.messages, "multi_agents": self.multi_agents}


def _line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


async def export_session(
    source: SessionSource, session_id: str, write: Callable[[str], object], *, batch_size: int = _BATCH
) -> ExportSummary:
    """Write one session as JSON Lines through ``write`` (one call per line, newline included)."""
    session = await source.read_session(session_id)
    if session is None:
        raise SessionNotFoundError(f"session {session_id!r} does not exist in {describe(source)}")
    summary = ExportSummary(session_id=session_id)
    header = {"type": EXPORT_TYPE, "version": EXPORT_VERSION, "session_id": session_id, "exported_at": now_iso()}
    write(_line({**header, "source": describe(source)}))
    write(_line({"type": "session", "record": session.to_dict()}))
    for agent_id in await source.list_agents(session_id):
        where = f"session {session_id!r}, agent {agent_id!r}"
        record = await source.read_agent(session_id, agent_id)
        if record is None:
            raise CorruptRecordError(f"{where}: the agent is listed but has no agent record")
        head = await source.message_head(session_id, agent_id, hint=record.next_message_id or None)
        write(_line({"type": "agent", "agent_id": agent_id, "messages": head, "record": record.to_dict()}))
        for start in range(0, head, batch_size):
            end = min(start + batch_size, head)
            batch = await source.read_messages(session_id, agent_id, start, end)
            _require_dense(batch, start, end, where)
            for message in batch:
                write(_line({"type": "message", "agent_id": agent_id, "record": message.to_dict()}))
        summary.agents += 1
        summary.messages += head
    for multi_id in await list_multi_agent_ids(source, session_id):
        multi = await source.read_multi_agent(session_id, multi_id)
        if multi is not None:
            write(_line({"type": "multi_agent", "record": multi.to_dict()}))
            summary.multi_agents += 1
    write(_line({"type": "end", **summary.counts()}))
    return summary


@dataclass(kw_only=True)
class _SnapshotAgent:
    record: AgentRecord
    declared: int
    messages: list[MessageRecord] = field(default_factory=list)


@dataclass(kw_only=True)
class SessionSnapshot:
    """A whole session held in memory (a parsed export); a :class:`SessionSource`."""

    session: SessionRecord
    agents: dict[str, _SnapshotAgent] = field(default_factory=dict)
    multi_agents: dict[str, MultiAgentRecord] = field(default_factory=dict)
    #: The session id the export's header names (None when the header names none).
    header_session_id: str | None = None
    #: Where the export was read from, for error messages.
    origin: str = "export"

    @property
    def session_id(self) -> str:
        return self.session.session_id

    @property
    def message_count(self) -> int:
        return sum(len(a.messages) for a in self.agents.values())

    def _agent(self, session_id: str, agent_id: str) -> _SnapshotAgent | None:
        return self.agents.get(agent_id) if session_id == self.session.session_id else None

    def describe(self) -> str:
        return "export file"

    async def read_session(self, session_id: str) -> SessionRecord | None:
        return self.session if session_id == self.session.session_id else None

    async def list_agents(self, session_id: str) -> list[str]:
        return sorted(self.agents) if session_id == self.session.session_id else []

    async def read_agent(self, session_id: str, agent_id: str) -> AgentRecord | None:
        found = self._agent(session_id, agent_id)
        return found.record if found is not None else None

    async def message_head(self, session_id: str, agent_id: str, *, hint: int | None = None) -> int:
        found = self._agent(session_id, agent_id)
        return len(found.messages) if found is not None else 0

    async def read_messages(
        self, session_id: str, agent_id: str, start: int = 0, end: int | None = None
    ) -> list[MessageRecord]:
        found = self._agent(session_id, agent_id)
        return found.messages[max(start, 0) : end] if found is not None else []

    async def read_multi_agent(self, session_id: str, multi_agent_id: str) -> MultiAgentRecord | None:
        return self.multi_agents.get(multi_agent_id) if session_id == self.session.session_id else None

    async def list_multi_agents(self, session_id: str) -> list[str]:
        return sorted(self.multi_agents) if session_id == self.session.session_id else []


def read_export(lines: Iterable[str], where: str = "export") -> SessionSnapshot:
    """Parse and fully validate an export; ``CorruptRecordError`` names the bad line."""
    header_seen = False
    header_id: str | None = None
    snapshot: SessionSnapshot | None = None
    ended: dict[str, Any] | None = None
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        at = f"{where}:{number}"
        if ended is not None:
            raise CorruptRecordError(f"{at}: data after the end record")
        item = _parse_line(raw, at)
        kind = item["type"]
        if not header_seen:
            header_id = _check_header(item, at)
            header_seen = True
        elif kind == "session":
            if snapshot is not None:
                raise CorruptRecordError(f"{at}: a second session record")
            snapshot = SessionSnapshot(
                session=SessionRecord.from_dict(item.get("record"), at), header_session_id=header_id, origin=where
            )
        elif snapshot is None:
            raise CorruptRecordError(f"{at}: {kind!r} record before the session record")
        elif kind == "end":
            ended = item
        else:
            _add_record(snapshot, kind, item, at)
    if not header_seen:
        raise CorruptRecordError(f"{where}: empty file, not a mooring export")
    if snapshot is None:
        raise CorruptRecordError(f"{where}: no session record")
    if ended is None:
        raise CorruptRecordError(f"{where}: no end record; the export is truncated")
    _check_complete(snapshot, ended, where)
    return snapshot


def _parse_line(raw: str, at: str) -> dict[str, Any]:
    try:
        item = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CorruptRecordError(f"{at}: not valid JSON ({exc})") from exc
    if not isinstance(item, dict) or not isinstance(item.get("type"), str):
        raise CorruptRecordError(f"{at}: expected a JSON object with a 'type'")
    return item


def _check_header(item: dict[str, Any], at: str) -> str | None:
    """Check the header line; returns the session id it names."""
    if item["type"] != EXPORT_TYPE:
        raise CorruptRecordError(f"{at}: not a mooring export (the first line must have type {EXPORT_TYPE!r})")
    version = item.get("version")
    if version != EXPORT_VERSION:
        raise CorruptRecordError(
            f"{at}: export format version {version!r} is not supported (this mooring reads {EXPORT_VERSION})"
        )
    session_id = item.get("session_id")
    if session_id is not None and not isinstance(session_id, str):
        raise CorruptRecordError(f"{at}: the header's session_id {session_id!r} is not a string")
    return session_id


def _add_agent(snapshot: SessionSnapshot, item: dict[str, Any], at: str) -> None:
    record = AgentRecord.from_dict(item.get("record"), at)
    if record.agent_id in snapshot.agents:
        raise CorruptRecordError(f"{at}: agent {record.agent_id!r} appears twice")
    declared = item.get("messages")
    if not isinstance(declared, int) or declared < 0:
        raise CorruptRecordError(f"{at}: 'messages' must be a non-negative integer")
    snapshot.agents[record.agent_id] = _SnapshotAgent(record=record, declared=declared)


def _add_message(snapshot: SessionSnapshot, item: dict[str, Any], at: str) -> None:
    agent = snapshot.agents.get(str(item.get("agent_id")))
    if agent is None:
        raise CorruptRecordError(f"{at}: message for agent {item.get('agent_id')!r} before its agent record")
    agent.messages.append(MessageRecord.from_dict(item.get("record"), at, expected_id=len(agent.messages)))


def _add_multi_agent(snapshot: SessionSnapshot, item: dict[str, Any], at: str) -> None:
    multi = MultiAgentRecord.from_dict(item.get("record"), at)
    snapshot.multi_agents[multi.multi_agent_id] = multi


# The records that may follow the session record, by their "type".
_RECORD_READERS: Mapping[str, Callable[[SessionSnapshot, dict[str, Any], str], None]] = {
    "agent": _add_agent,
    "message": _add_message,
    "multi_agent": _add_multi_agent,
}


def _add_record(snapshot: SessionSnapshot, kind: str, item: dict[str, Any], at: str) -> None:
    reader = _RECORD_READERS.get(kind)
    if reader is None:
        raise CorruptRecordError(f"{at}: unknown record type {kind!r}")
    reader(snapshot, item, at)


def _check_complete(snapshot: SessionSnapshot, ended: dict[str, Any], where: str) -> None:
    """Every agent holds the messages it declared and the end record counts what was read."""
    for agent_id, agent in snapshot.agents.items():
        if len(agent.messages) != agent.declared:
            raise CorruptRecordError(
                f"{where}: agent {agent_id!r} declares {agent.declared} messages but the file holds "
                f"{len(agent.messages)}"
            )
    counts = (len(snapshot.agents), snapshot.message_count, len(snapshot.multi_agents))
    if (ended.get("agents"), ended.get("messages"), ended.get("multi_agents")) != counts:
        raise CorruptRecordError(f"{where}: the end record's counts do not match the records in the file")


async def import_session(
    target: SessionRepository,
    snapshot: SessionSnapshot,
    *,
    target_id: str | None = None,
    replace: bool = False,
) -> CopyReport:
    """Store a parsed export under ``target_id`` (default: its session id); an existing
    session is an error unless ``replace``.

    An export whose header and session record name different sessions is refused (it was
    edited or assembled by hand, and either id may be the intended one) unless ``target_id``
    says which id to use. With ``replace`` the existing session is deleted first: the file was
    fully validated before (by :func:`read_export`), so only a store failure can interrupt the
    import after that.
    """
    header_id = snapshot.header_session_id
    if target_id is None and header_id is not None and header_id != snapshot.session_id:
        raise CorruptRecordError(
            f"{snapshot.origin}: the export header names session {header_id!r} but its session record is "
            f"{snapshot.session_id!r}; choose the id to import it under (--as ID)"
        )
    target_id = validate_id(target_id if target_id is not None else snapshot.session_id, "session_id")
    if await target.read_session(target_id) is not None:
        if not replace:
            raise ConflictError(
                f"session {target_id!r} already exists in {target.describe()}; pass --replace to overwrite it"
            )
        await target.delete_session(target_id)
    report = CopyReport(session_id=snapshot.session_id, target_id=target_id)
    try:
        await _copy_into(report, snapshot, target, new_only=True)
    except BaseException:
        await _remove_if_created(target, report)
        raise
    return report


# -- undo -------------------------------------------------------------------------------------
