"""``mooring sessions verify``: check every stored record, and repair what can be repaired safely.

Checks, per agent: every record parses (a truncated file is found one message at a time),
message ids are dense from 0, every toolUse is answered by a toolResult in the next message
(and every toolResult answers one), and the agent record's head hint agrees with the store.

Repairs never delete anything. On the file backend a corrupt file is moved to
``<storage_dir>/.quarantine/<run>/<path relative to storage_dir>``, a quarantined
``session.json``/``agent.json`` is recreated empty (so the rest stays reachable), and
messages stranded after a gap are moved aside too so the ids are dense again. On any backend
a wrong head hint in the agent record is corrected by compare-and-set. Other backends have no
files to move aside, so corrupt records there are reported and left alone.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mooring.errors import ConflictError, CorruptRecordError, LeaseTimeoutError, SessionNotFoundError
from mooring.session.backends.file.repository import FileSessionRepository
from mooring.session.ops import list_multi_agent_ids, set_head_hint
from mooring.session.records import AgentRecord, MessageRecord, SessionRecord
from mooring.session.repository import SessionRepository
from mooring.types import tool_result_ids, tool_uses

_CHUNK = 100
_MESSAGE_FILE = re.compile(r"message_(0|[1-9][0-9]*)\.json")
QUARANTINE_DIR = ".quarantine"


@dataclass(kw_only=True)
class Problem:
    severity: str  # "error" | "warning"
    kind: str
    session_id: str
    agent_id: str | None = None
    message_id: int | None = None
    location: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(kw_only=True)
class Repair:
    action: str  # "quarantined" | "recreated" | "updated-head" | "skipped"
    location: str
    to: str | None = None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(kw_only=True)
class VerifyReport:
    store: str
    sessions: int = 0
    agents: int = 0
    messages: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


class Verifier:
    """Walks one store; ``await Verifier(repo).run()`` returns a :class:`VerifyReport`."""

    def __init__(self, repository: SessionRepository) -> None:
        self.repository = repository
        self.root: Path | None = repository.storage_dir if isinstance(repository, FileSessionRepository) else None
        self.report = VerifyReport(store=repository.describe())

    # -- locations ----------------------------------------------------------------------------

    def _path(self, *parts: str) -> Path | None:
        return self.root.joinpath(*parts) if self.root is not None else None

    def where(self, session_id: str, *parts: str, describe: str) -> str:
        path = self._path(f"session_{session_id}", *parts)
        return str(path) if path is not None else describe

    def message_where(self, session_id: str, agent_id: str, message_id: int) -> str:
        return self.where(
            session_id,
            "agents",
            f"agent_{agent_id}",
            "messages",
            f"message_{message_id}.json",
            describe=f"session {session_id!r}, agent {agent_id!r}, message {message_id}",
        )

    def agent_where(self, session_id: str, agent_id: str) -> str:
        return self.where(
            session_id,
            "agents",
            f"agent_{agent_id}",
            "agent.json",
            describe=f"session {session_id!r}, agent {agent_id!r} (agent record)",
        )

    def _add(self, severity: str, kind: str, session_id: str, location: str, detail: str, **ids: Any) -> None:
        self.report.problems.append(
            Problem(severity=severity, kind=kind, session_id=session_id, location=location, detail=detail, **ids)
        )

    # -- walk ---------------------------------------------------------------------------------

    async def session_ids(self) -> list[str]:
        found: set[str] = set()
        cursor: str | None = None
        while True:
            page = await self.repository.list_sessions(cursor=cursor, limit=500)
            found.update(s.session_id for s in page.sessions)
            cursor = page.next_cursor
            if cursor is None:
                break
        if self.root is not None:
            # The listing skips sessions whose session.json does not parse; the directory does not.
            found.update(await asyncio.to_thread(_scan_prefixed, self.root, "session_"))
        return sorted(found)

    async def run(self) -> VerifyReport:
        for session_id in await self.session_ids():
            await self.verify_session(session_id)
        return self.report

    async def verify_session(self, session_id: str) -> None:
        self.report.sessions += 1
        location = self.where(session_id, "session.json", describe=f"session {session_id!r} (session record)")
        session: SessionRecord | None = None
        try:
            session = await self.repository.read_session(session_id)
        except CorruptRecordError as exc:
            self._add("error", "corrupt-record", session_id, location, str(exc))
        else:
            if session is None:
                self._add("error", "missing-record", session_id, location, "the session has no session record")
        for agent_id in await self.agent_ids(session_id):
            await self.verify_agent(session_id, agent_id)
        if self.root is not None:
            for path in await asyncio.to_thread(_stale_temp_files, self.root / f"session_{session_id}"):
                self._add(
                    "warning",
                    "temp-file",
                    session_id,
                    str(path),
                    "temp file left by a write cut off by a crash",
                )
        for multi_id in await self.multi_agent_ids(session_id):
            multi_where = self.where(
                session_id,
                "multi_agents",
                f"multi_agent_{multi_id}",
                "multi_agent.json",
                describe=f"session {session_id!r}, multi-agent {multi_id!r}",
            )
            try:
                await self.repository.read_multi_agent(session_id, multi_id)
            except CorruptRecordError as exc:
                self._add("error", "corrupt-record", session_id, multi_where, str(exc))

    async def agent_ids(self, session_id: str) -> list[str]:
        if self.root is not None:
            return await asyncio.to_thread(_scan_prefixed, self.root / f"session_{session_id}" / "agents", "agent_")
        try:
            return await self.repository.list_agents(session_id)
        except (SessionNotFoundError, CorruptRecordError):
            return []

    async def multi_agent_ids(self, session_id: str) -> list[str]:
        if self.root is not None:
            root = self.root / f"session_{session_id}" / "multi_agents"
            return await asyncio.to_thread(_scan_prefixed, root, "multi_agent_")
        try:
            return await list_multi_agent_ids(self.repository, session_id)
        except (SessionNotFoundError, CorruptRecordError):
            return []

    async def stored_ids(self, session_id: str, agent_id: str, hint: int | None) -> tuple[int, set[int] | None]:
        """The id range to read, and the ids present on disk (file backend only)."""
        if self.root is not None:
            directory = self.root / f"session_{session_id}" / "agents" / f"agent_{agent_id}" / "messages"
            ids = await asyncio.to_thread(_scan_message_ids, directory)
            return (max(ids) + 1 if ids else 0), ids
        return await self.repository.message_head(session_id, agent_id, hint=hint), None

    async def read_all(self, session_id: str, agent_id: str, top: int) -> dict[int, MessageRecord]:
        """Every readable message below ``top``; each unreadable one is reported by itself."""
        found: dict[int, MessageRecord] = {}
        for start in range(0, top, _CHUNK):
            end = min(start + _CHUNK, top)
            try:
                batch = await self.repository.read_messages(session_id, agent_id, start, end)
            except CorruptRecordError:
                batch = []
                for message_id in range(start, end):
                    try:
                        batch.extend(
                            await self.repository.read_messages(session_id, agent_id, message_id, message_id + 1)
                        )
                    except CorruptRecordError as exc:
                        self._add(
                            "error",
                            "corrupt-record",
                            session_id,
                            self.message_where(session_id, agent_id, message_id),
                            str(exc),
                            agent_id=agent_id,
                            message_id=message_id,
                        )
            for record in batch:
                found[record.message_id] = record
        return found

    async def verify_agent(self, session_id: str, agent_id: str) -> None:
        self.report.agents += 1
        record: AgentRecord | None = None
        try:
            record = await self.repository.read_agent(session_id, agent_id)
        except CorruptRecordError as exc:
            self._add(
                "error",
                "corrupt-record",
                session_id,
                self.agent_where(session_id, agent_id),
                str(exc),
                agent_id=agent_id,
            )
        else:
            if record is None:
                self._add(
                    "error",
                    "missing-record",
                    session_id,
                    self.agent_where(session_id, agent_id),
                    "the agent has messages but no agent record",
                    agent_id=agent_id,
                )
        hint = record.next_message_id if record is not None and record.next_message_id else None
        top, on_disk = await self.stored_ids(session_id, agent_id, hint)
        records = await self.read_all(session_id, agent_id, top)
        self.report.messages += len(records)
        corrupt = {
            p.message_id
            for p in self.report.problems
            if p.kind == "corrupt-record"
            and (p.session_id, p.agent_id) == (session_id, agent_id)
            and p.message_id is not None
        }
        present = (set(records) | corrupt) if on_disk is None else on_disk
        missing = sorted(set(range(top)) - present)
        for first, last in _runs(missing):
            span = f"message {first}" if first == last else f"messages {first}-{last}"
            self._add(
                "error",
                "id-gap",
                session_id,
                self.message_where(session_id, agent_id, first),
                f"{span} missing; ids must be dense, so messages {last + 1}..{top - 1} after the gap are unreachable",
                agent_id=agent_id,
                message_id=first,
            )
        self.check_tool_pairs(session_id, agent_id, records, top)
        if record is not None and not missing:
            self.check_head(session_id, agent_id, record, top)

    def check_tool_pairs(self, session_id: str, agent_id: str, records: dict[int, MessageRecord], top: int) -> None:
        for message_id in sorted(records):
            message = records[message_id].to_message()
            uses = tool_uses(message) if message["role"] == "assistant" else []
            following = records.get(message_id + 1)
            if uses:
                if message_id + 1 >= top:
                    names = ", ".join(f"{u['name']} [{u['toolUseId']}]" for u in uses)
                    self._add(
                        "warning",
                        "dangling-tool-use",
                        session_id,
                        self.message_where(session_id, agent_id, message_id),
                        f"tool call {names} is the last message and has no toolResult; the next load of "
                        "the session closes it with an error result",
                        agent_id=agent_id,
                        message_id=message_id,
                    )
                elif following is not None:
                    answered = set(tool_result_ids(following.to_message()))
                    for use in uses:
                        if use["toolUseId"] not in answered:
                            self._add(
                                "error",
                                "dangling-tool-use",
                                session_id,
                                self.message_where(session_id, agent_id, message_id),
                                f"tool call {use['name']} [{use['toolUseId']}] has no toolResult in message "
                                f"{message_id + 1}",
                                agent_id=agent_id,
                                message_id=message_id,
                            )
            results = tool_result_ids(message) if message["role"] == "user" else []
            previous = records.get(message_id - 1)
            if results and (previous is not None or message_id == 0):
                asked = {u["toolUseId"] for u in tool_uses(previous.to_message())} if previous is not None else set()
                for result_id in results:
                    if result_id not in asked:
                        self._add(
                            "error",
                            "orphan-tool-result",
                            session_id,
                            self.message_where(session_id, agent_id, message_id),
                            f"toolResult [{result_id}] answers no toolUse of message {message_id - 1}",
                            agent_id=agent_id,
                            message_id=message_id,
                        )
            if message_id == top - 1 and message["role"] == "user" and not results:
                self._add(
                    "warning",
                    "unanswered-prompt",
                    session_id,
                    self.message_where(session_id, agent_id, message_id),
                    "the last message is a prompt without an answer; the next load of the session closes it",
                    agent_id=agent_id,
                    message_id=message_id,
                )

    def check_head(self, session_id: str, agent_id: str, record: AgentRecord, head: int) -> None:
        where = self.agent_where(session_id, agent_id)
        hint = record.next_message_id
        # A record mooring never wrote (version 0, for example Strands') carries no hint at all.
        if hint > head or (record.version > 0 and hint < head):
            self._add(
                "error" if hint > head else "warning",
                "head-mismatch",
                session_id,
                where,
                f"the agent record's next_message_id is {hint} but the store's head is {head}",
                agent_id=agent_id,
            )
        removed = record.conversation_manager_state.get("removed_message_count")
        if isinstance(removed, int) and removed > head:
            self._add(
                "error",
                "window-mismatch",
                session_id,
                where,
                f"removed_message_count {removed} is past the store's head {head}",
                agent_id=agent_id,
            )


# -- repair -----------------------------------------------------------------------------------


class Repairer:
    """Applies the safe repairs for the problems a :class:`Verifier` found."""

    def __init__(self, repository: SessionRepository, problems: list[Problem], *, lease_wait: float = 10.0) -> None:
        self.repository = repository
        self.problems = problems
        self.lease_wait = lease_wait
        self.root = repository.storage_dir if isinstance(repository, FileSessionRepository) else None
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        self.quarantine = self.root / QUARANTINE_DIR / stamp if self.root is not None else None
        self.repairs: list[Repair] = []

    async def run(self) -> list[Repair]:
        agents = sorted({(p.session_id, p.agent_id) for p in self.problems if p.agent_id is not None})
        sessions = sorted({p.session_id for p in self.problems})
        for session_id in sessions:
            await self.repair_session_level(session_id)
        for session_id, agent_id in agents:
            assert agent_id is not None
            try:
                lease = await self.repository.acquire_lease(session_id, agent_id, ttl=60.0, wait=self.lease_wait)
            except (LeaseTimeoutError, SessionNotFoundError) as exc:
                self.repairs.append(
                    Repair(action="skipped", location=f"session {session_id!r}, agent {agent_id!r}", detail=str(exc))
                )
                continue
            try:
                await self.repair_agent(session_id, agent_id)
            finally:
                await self.repository.release_lease(lease)
        return self.repairs

    def _corrupt(self, session_id: str, agent_id: str | None, *, message: bool) -> list[Problem]:
        return [
            p
            for p in self.problems
            if p.kind == "corrupt-record"
            and p.session_id == session_id
            and p.agent_id == agent_id
            and (p.message_id is not None) == message
        ]

    async def repair_session_level(self, session_id: str) -> None:
        for problem in self.problems:
            if problem.kind == "temp-file" and problem.session_id == session_id:
                await self.move_aside(problem.location, problem.detail)
        for problem in self._corrupt(session_id, None, message=False):
            if not await self.move_aside(problem.location, problem.detail):
                continue
            if problem.location.endswith("session.json"):
                await self.repository.create_session(SessionRecord(session_id=session_id))
                self.repairs.append(
                    Repair(action="recreated", location=problem.location, detail="a new, empty session record")
                )
        for problem in self.problems:
            if problem.session_id == session_id and problem.kind == "missing-record" and problem.agent_id is None:
                try:
                    await self.repository.create_session(SessionRecord(session_id=session_id))
                except ConflictError:
                    continue
                self.repairs.append(
                    Repair(action="recreated", location=problem.location, detail="a new session record")
                )

    async def repair_agent(self, session_id: str, agent_id: str) -> None:
        for problem in self._corrupt(session_id, agent_id, message=False):
            if await self.move_aside(problem.location, problem.detail):
                await self.recreate_agent(session_id, agent_id, problem.location)
        for problem in self.problems:
            if problem.kind == "missing-record" and (problem.session_id, problem.agent_id) == (session_id, agent_id):
                await self.recreate_agent(session_id, agent_id, problem.location)
        for problem in self._corrupt(session_id, agent_id, message=True):
            await self.move_aside(problem.location, problem.detail)
        if self.root is not None:
            await self.close_gap(session_id, agent_id)
        await self.fix_head(session_id, agent_id)

    async def recreate_agent(self, session_id: str, agent_id: str, location: str) -> None:
        try:
            await self.repository.create_agent(session_id, AgentRecord(agent_id=agent_id))
        except ConflictError:
            return
        self.repairs.append(
            Repair(action="recreated", location=location, detail="a new agent record (empty state, window from 0)")
        )

    async def close_gap(self, session_id: str, agent_id: str) -> None:
        assert self.root is not None
        directory = self.root / f"session_{session_id}" / "agents" / f"agent_{agent_id}" / "messages"
        ids = await asyncio.to_thread(_scan_message_ids, directory)
        dense = 0
        while dense in ids:
            dense += 1
        for message_id in sorted(i for i in ids if i > dense):
            await self.move_aside(
                str(directory / f"message_{message_id}.json"),
                f"unreachable after the gap at message {dense}; moved aside so the ids are dense again",
            )

    async def fix_head(self, session_id: str, agent_id: str) -> None:
        try:
            record = await self.repository.read_agent(session_id, agent_id)
        except CorruptRecordError:
            return
        if record is None:
            return
        head = await self.repository.message_head(session_id, agent_id, hint=None)
        removed = record.conversation_manager_state.get("removed_message_count")
        hint = record.next_message_id
        stale = hint > head or (record.version > 0 and hint < head) or (isinstance(removed, int) and removed > head)
        if stale and await set_head_hint(self.repository, session_id, agent_id, head):
            self.repairs.append(
                Repair(
                    action="updated-head",
                    location=f"session {session_id!r}, agent {agent_id!r} (agent record)",
                    detail=f"next_message_id {hint} -> {head}",
                )
            )

    async def move_aside(self, location: str, reason: str) -> bool:
        if self.root is None or self.quarantine is None:
            self.repairs.append(
                Repair(
                    action="skipped",
                    location=location,
                    detail=f"{self.repository.describe()} has no files to move aside; repair of corrupt records is "
                    "file-store only (the record was left as it is)",
                )
            )
            return False
        source = Path(location)
        target = self.quarantine / source.relative_to(self.root)
        await asyncio.to_thread(_move, source, target)
        self.repairs.append(Repair(action="quarantined", location=location, to=str(target), detail=reason))
        return True


def _move(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.rename(source, target)
    # The move must survive a crash like any other store write.
    for directory in {source.parent, target.parent}:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# Temp files live for the milliseconds of one write; one this old belongs to a dead writer.
STALE_TEMP_SECONDS = 60.0


def _stale_temp_files(session_dir: Path) -> list[Path]:
    """Temp files (mooring's ``.mooring-*.tmp``, Strands' ``.strands_*.tmp``) left by crashed writes."""
    found = []
    cutoff = time.time() - STALE_TEMP_SECONDS
    for directory, _, names in os.walk(session_dir):
        for name in names:
            if name.endswith(".tmp") and name.startswith((".mooring-", ".strands_")):
                path = Path(directory, name)
                try:
                    if path.lstat().st_mtime < cutoff:
                        found.append(path)
                except FileNotFoundError:
                    continue  # a live write finished meanwhile
    return sorted(found)


def _scan_prefixed(directory: Path, prefix: str) -> list[str]:
    try:
        with os.scandir(directory) as entries:
            return sorted(
                e.name[len(prefix) :]
                for e in entries
                if e.name.startswith(prefix) and len(e.name) > len(prefix) and e.is_dir(follow_symlinks=False)
            )
    except (FileNotFoundError, NotADirectoryError):
        return []


def _scan_message_ids(directory: Path) -> set[int]:
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return set()
    return {int(m.group(1)) for m in map(_MESSAGE_FILE.fullmatch, names) if m is not None}


def _runs(ids: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for value in ids:
        if runs and runs[-1][1] == value - 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


async def verify(repository: SessionRepository, *, repair: bool = False) -> dict[str, Any]:
    """Check the whole store (and repair it when asked); the ``--json`` document of the command."""
    report = await Verifier(repository).run()
    repairs: list[Repair] = []
    remaining: list[Problem] | None = None
    if repair and report.problems:
        repairs = await Repairer(repository, report.problems).run()
        remaining = (await Verifier(repository).run()).problems
    left = remaining if remaining is not None else report.problems
    return {
        "store": report.store,
        "sessions": report.sessions,
        "agents": report.agents,
        "messages": report.messages,
        "problems": [p.to_dict() for p in report.problems],
        "repairs": [r.to_dict() for r in repairs],
        "remaining": [p.to_dict() for p in remaining] if remaining is not None else None,
        "ok": not any(p.severity == "error" for p in left),
    }
