"""Check a session store through the repository contract, and repair what can be repaired safely.

Checks, per agent: every record parses (a truncated record is found one message at a time),
message ids are dense from 0, every toolUse is answered by a toolResult in the next message
(and every toolResult answers one), and the agent record's head hint agrees with the store.

Repairs never delete anything. Through the contract, on any backend, a wrong head hint (or a
window past the head) is corrected by compare-and-set, and a missing session or agent record
is recreated empty so the rest stays reachable. A corrupt record can only be moved aside where
the store has somewhere to put it; elsewhere it is reported and left as it is. A message that
cannot be loaded (or is missing between others) is replaced by a placeholder at its id
(:mod:`mooring.session._placeholder`), so every intact message after it stays in the
conversation; each problem's ``fix`` says what a repair would do.

What the contract cannot see is the store's own layout: files a crashed write left behind, a
record that exists but does not parse (a listing skips it), a name no reader will ever look
up. A backend with such a layout supplies a :class:`StoreInspector` and the caller passes it
in (``inspector=``). It is passed rather than found, so that this module depends on the
contract alone and never imports a backend, and a caller can verify a wrapped repository
(encryption, telemetry) with the inspector of the store underneath. The file store's is
:class:`mooring.session.backends.file.repair.FileStoreInspector`; ``mooring sessions
verify`` passes it whenever the store is a directory.

Example::

    report = await verify_store(repository)
    if not report.ok:
        for problem in report.errors:
            print(problem.kind, problem.location, problem.detail)

    inspector = FileStoreInspector(file_repository)
    report = await verify_session(file_repository, "user-42", repair=True, inspector=inspector)
    assert report.ok, report.to_dict()["remaining"]
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

from mooring.errors import ConflictError, CorruptRecordError, LeaseTimeoutError, SessionNotFoundError
from mooring.session._findings import (
    LINK_KINDS,
    Problem,
    Repair,
    Severity,
    StoreInspector,
    VerifyReport,
)
from mooring.session._layout import (
    AGENT_FILE,
    MULTI_AGENT_FILE,
    SESSION_FILE,
    agent_parts,
    message_name,
    messages_parts,
    multi_agent_parts,
    session_parts,
)
from mooring.session._placeholder import describe_fixes, fill_placeholders, unloadable
from mooring.session.ops import list_multi_agent_ids, set_head_hint
from mooring.session.records import ADVISORY_LAG, AgentRecord, MessageRecord, SessionRecord
from mooring.session.repository import SessionRepository
from mooring.types import tool_result_ids, tool_uses

__all__ = ["Problem", "Repair", "StoreInspector", "VerifyReport", "verify_session", "verify_store"]

_CHUNK = 100  # messages per read; a read that fails is retried one message at a time


async def verify_store(
    repository: SessionRepository,
    *,
    repair: bool = False,
    inspector: StoreInspector | None = None,
    lease_wait: float = 10.0,
) -> VerifyReport:
    """Check every session of the store; with ``repair``, fix what is safe and check again.

    Repairs of an agent run under its invocation lease, waiting up to ``lease_wait`` seconds
    for a running turn; an agent whose lease stays busy is reported as ``skipped``.

    Example::

        report = await verify_store(open_repository("sqlite:///sessions.db"), repair=True)
        print(json.dumps(report.to_dict(), indent=2))
    """
    return await _verify(repository, None, repair=repair, inspector=inspector, lease_wait=lease_wait)


async def verify_session(
    repository: SessionRepository,
    session_id: str,
    *,
    repair: bool = False,
    inspector: StoreInspector | None = None,
    lease_wait: float = 10.0,
) -> VerifyReport:
    """Check one session (see :func:`verify_store`); ``SessionNotFoundError`` if it is not there.

    Example::

        report = await verify_session(repository, "user-42")
        assert report.ok, [p.detail for p in report.errors]
    """
    try:
        found = await repository.read_session(session_id) is not None
    except CorruptRecordError:
        found = True
    if not found and (inspector is None or session_id not in await inspector.session_ids()):
        raise SessionNotFoundError(f"session {session_id!r} does not exist in {repository.describe()}")
    return await _verify(repository, [session_id], repair=repair, inspector=inspector, lease_wait=lease_wait)


async def _verify(
    repository: SessionRepository,
    session_ids: list[str] | None,
    *,
    repair: bool,
    inspector: StoreInspector | None,
    lease_wait: float,
) -> VerifyReport:
    report = await _Checker(repository, inspector).run(session_ids)
    if repair and report.problems:
        report.repairs = await _Repairer(repository, inspector, report.problems, lease_wait=lease_wait).run()
        report.remaining = (await _Checker(repository, inspector).run(session_ids)).problems
    return report


# -- checks -----------------------------------------------------------------------------------


class _Places:
    """Report locations: the inspector's paths or keys, else descriptions."""

    def __init__(self, inspector: StoreInspector | None) -> None:
        self.inspector = inspector

    def _at(self, parts: list[str], describe: str) -> str:
        return self.inspector.locate(parts) if self.inspector is not None else describe

    def session(self, session_id: str) -> str:
        return self._at([*session_parts(session_id), SESSION_FILE], f"session {session_id!r} (session record)")

    def agent(self, session_id: str, agent_id: str) -> str:
        return self._at(
            [*agent_parts(session_id, agent_id), AGENT_FILE],
            f"session {session_id!r}, agent {agent_id!r} (agent record)",
        )

    def message(self, session_id: str, agent_id: str, message_id: int) -> str:
        return self._at(
            [*messages_parts(session_id, agent_id), message_name(message_id)],
            f"session {session_id!r}, agent {agent_id!r}, message {message_id}",
        )

    def multi_agent(self, session_id: str, multi_agent_id: str) -> str:
        return self._at(
            [*multi_agent_parts(session_id, multi_agent_id), MULTI_AGENT_FILE],
            f"session {session_id!r}, multi-agent {multi_agent_id!r}",
        )


class _Checker:
    def __init__(self, repository: SessionRepository, inspector: StoreInspector | None) -> None:
        self.repository = repository
        self.inspector = inspector
        self.places = _Places(inspector)
        self.report = VerifyReport(store=repository.describe())

    def _add(self, severity: Severity, kind: str, session_id: str, location: str, detail: str, **ids: Any) -> None:
        if kind == "corrupt-record" and self._linked(location):
            return  # the inspector reported the symlink or hard link this read refused
        self.report.problems.append(
            Problem(severity=severity, kind=kind, session_id=session_id, location=location, detail=detail, **ids)
        )

    def _linked(self, location: str) -> bool:
        return any(
            p.kind in LINK_KINDS and (location == p.location or location.startswith(p.location.rstrip("/") + "/"))
            for p in self.report.problems
        )

    async def run(self, session_ids: list[str] | None) -> VerifyReport:
        if session_ids is None:
            if self.inspector is not None:
                self.report.problems.extend(await self.inspector.store_problems())
            session_ids = await self._session_ids()
        for session_id in session_ids:
            await self._session(session_id)
        return self.report

    async def _session_ids(self) -> list[str]:
        found: set[str] = set()
        cursor: str | None = None
        while True:
            page = await self.repository.list_sessions(cursor=cursor, limit=500)
            found.update(s.session_id for s in page.sessions)
            cursor = page.next_cursor
            if cursor is None:
                break
        if self.inspector is not None:
            found.update(await self.inspector.session_ids())
        return sorted(found)

    async def _session(self, session_id: str) -> None:
        self.report.sessions += 1
        if self.inspector is not None:
            self.report.problems.extend(await self.inspector.session_problems(session_id))
        location = self.places.session(session_id)
        try:
            session = await self.repository.read_session(session_id)
        except CorruptRecordError as exc:
            self._add("error", "corrupt-record", session_id, location, str(exc))
        else:
            if session is None:
                self._add("error", "missing-record", session_id, location, "the session has no session record")
        for agent_id in await self._agent_ids(session_id):
            await self._agent(session_id, agent_id)
        for multi_id in await self._multi_agent_ids(session_id):
            try:
                await self.repository.read_multi_agent(session_id, multi_id)
            except CorruptRecordError as exc:
                where = self.places.multi_agent(session_id, multi_id)
                self._add("error", "corrupt-record", session_id, where, str(exc))

    async def _agent_ids(self, session_id: str) -> list[str]:
        if self.inspector is not None:
            return await self.inspector.agent_ids(session_id)
        try:
            return await self.repository.list_agents(session_id)
        except (SessionNotFoundError, CorruptRecordError):
            return []

    async def _multi_agent_ids(self, session_id: str) -> list[str]:
        if self.inspector is not None:
            return await self.inspector.multi_agent_ids(session_id)
        try:
            return await list_multi_agent_ids(self.repository, session_id)
        except (SessionNotFoundError, CorruptRecordError):
            return []

    async def _stored_ids(self, session_id: str, agent_id: str, hint: int | None) -> tuple[int, set[int] | None]:
        """The id range to read, and the ids present (when an inspector can tell)."""
        if self.inspector is not None:
            ids = await self.inspector.message_ids(session_id, agent_id)
            return (max(ids) + 1 if ids else 0), ids
        return await self.repository.message_head(session_id, agent_id, hint=hint), None

    async def _read_all(self, session_id: str, agent_id: str, top: int) -> dict[int, MessageRecord]:
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
                            self.places.message(session_id, agent_id, message_id),
                            str(exc),
                            agent_id=agent_id,
                            message_id=message_id,
                        )
            for record in batch:
                found[record.message_id] = record
        return found

    async def _agent(self, session_id: str, agent_id: str) -> None:
        self.report.agents += 1
        where = self.places.agent(session_id, agent_id)
        record: AgentRecord | None = None
        try:
            record = await self.repository.read_agent(session_id, agent_id)
        except CorruptRecordError as exc:
            self._add("error", "corrupt-record", session_id, where, str(exc), agent_id=agent_id)
        else:
            if record is None:
                detail = "the agent has messages but no agent record"
                self._add("error", "missing-record", session_id, where, detail, agent_id=agent_id)
        hint = record.next_message_id if record is not None and record.next_message_id else None
        top, present = await self._stored_ids(session_id, agent_id, hint)
        records = await self._read_all(session_id, agent_id, top)
        self.report.messages += len(records)
        if present is None:
            # Without a layout to look at, an unreadable message still proves its id is taken.
            present = set(records) | {
                p.message_id
                for p in self.report.problems
                if p.kind == "corrupt-record"
                and (p.session_id, p.agent_id) == (session_id, agent_id)
                and p.message_id is not None
            }
        missing = sorted(set(range(top)) - present)
        for first, last in _runs(missing):
            span = f"message {first}" if first == last else f"messages {first}-{last}"
            self._add(
                "error",
                "id-gap",
                session_id,
                self.places.message(session_id, agent_id, first),
                f"{span} missing; ids must be dense, so messages {last + 1}..{top - 1} after the gap are unreachable",
                agent_id=agent_id,
                message_id=first,
            )
        mine = [p for p in self.report.problems if (p.session_id, p.agent_id) == (session_id, agent_id)]
        describe_fixes(mine, records, missing, repairable=self.inspector is not None)
        self._tool_pairs(session_id, agent_id, records, top)
        if record is not None and not missing:
            self._head(session_id, agent_id, record, top)

    def _tool_pairs(self, session_id: str, agent_id: str, records: dict[int, MessageRecord], top: int) -> None:
        for message_id, severity, kind, detail in _tool_pair_findings(records, top):
            where = self.places.message(session_id, agent_id, message_id)
            self._add(severity, kind, session_id, where, detail, agent_id=agent_id, message_id=message_id)

    def _head(self, session_id: str, agent_id: str, record: AgentRecord, head: int) -> None:
        where = self.places.agent(session_id, agent_id)
        hint = record.next_message_id
        if _hint_wrong(record, head):
            self._add(
                "error" if hint > head else "warning",
                "head-mismatch",
                session_id,
                where,
                f"the agent record's next_message_id is {hint} but the store's head is {head}",
                agent_id=agent_id,
            )
        if _window_past(record, head):
            removed = record.conversation_manager_state["removed_message_count"]
            self._add(
                "error",
                "window-mismatch",
                session_id,
                where,
                f"removed_message_count {removed} is past the store's head {head}",
                agent_id=agent_id,
            )


def _tool_pair_findings(records: dict[int, MessageRecord], top: int) -> Iterator[tuple[int, Severity, str, str]]:
    """(message id, severity, kind, detail) for each toolUse without its toolResult, each
    toolResult answering nothing, and a turn left open at the end."""
    for message_id in sorted(records):
        message = records[message_id].to_message()
        uses = tool_uses(message) if message["role"] == "assistant" else []
        following = records.get(message_id + 1)
        if uses and message_id + 1 >= top:
            names = ", ".join(f"{u['name']} [{u['toolUseId']}]" for u in uses)
            yield (
                message_id,
                "warning",
                "dangling-tool-use",
                f"tool call {names} is the last message and has no toolResult; the next load of the session "
                "closes it with an error result",
            )
        elif uses and following is not None:
            answered = set(tool_result_ids(following.to_message()))
            for use in (u for u in uses if u["toolUseId"] not in answered):
                detail = f"tool call {use['name']} [{use['toolUseId']}] has no toolResult in message {message_id + 1}"
                yield message_id, "error", "dangling-tool-use", detail
        results = tool_result_ids(message) if message["role"] == "user" else []
        previous = records.get(message_id - 1)
        if results and (previous is not None or message_id == 0):
            asked = {u["toolUseId"] for u in tool_uses(previous.to_message())} if previous is not None else set()
            for result_id in (r for r in results if r not in asked):
                detail = f"toolResult [{result_id}] answers no toolUse of message {message_id - 1}"
                yield message_id, "error", "orphan-tool-result", detail
        if message_id == top - 1 and message["role"] == "user" and not results:
            detail = "the last message is a prompt without an answer; the next load of the session closes it"
            yield message_id, "warning", "unanswered-prompt", detail


def _hint_wrong(record: AgentRecord, head: int) -> bool:
    # A record mooring never wrote (version 0, for example Strands') carries no hint at all.
    # The hint may trail by less than ADVISORY_LAG (a plain turn writes only its messages).
    hint = record.next_message_id
    return hint > head or (record.version > 0 and hint <= head - ADVISORY_LAG)


def _window_past(record: AgentRecord, head: int) -> bool:
    removed = record.conversation_manager_state.get("removed_message_count")
    return isinstance(removed, int) and removed > head


def _runs(ids: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for value in ids:
        if runs and runs[-1][1] == value - 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


# -- repairs ----------------------------------------------------------------------------------


class _Repairer:
    """Applies the safe repairs for the problems a check found: sessions first, then each agent
    under its invocation lease, so no running turn writes while its records are fixed."""

    def __init__(
        self,
        repository: SessionRepository,
        inspector: StoreInspector | None,
        problems: list[Problem],
        *,
        lease_wait: float,
    ) -> None:
        self.repository = repository
        self.inspector = inspector
        self.places = _Places(inspector)
        self.problems = problems
        self.lease_wait = lease_wait
        self.repairs: list[Repair] = []

    async def run(self) -> list[Repair]:
        for session_id in sorted({p.session_id for p in self.problems if p.session_id}):
            await self._session(session_id)
        agents = sorted({(p.session_id, p.agent_id) for p in self.problems if p.agent_id is not None})
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
                await self._agent(session_id, agent_id)
            finally:
                await self.repository.release_lease(lease)
        return self.repairs

    def _corrupt(self, session_id: str, agent_id: str | None) -> list[Problem]:
        """The unloadable session, agent and multi-agent records (a link only at a record file)."""
        records = {self.places.session(session_id)}
        if agent_id is not None:
            records.add(self.places.agent(session_id, agent_id))
        return [
            p
            for p in self.problems
            if (p.kind == "corrupt-record" or (p.kind in LINK_KINDS and p.location in records))
            and p.severity == "error"
            and p.session_id == session_id
            and p.agent_id == agent_id
            and p.message_id is None
        ]

    async def _session(self, session_id: str) -> None:
        if self.inspector is not None:
            mine = [p for p in self.problems if p.session_id == session_id]
            self.repairs.extend(await self.inspector.repair_session(session_id, mine))
        session_record = self.places.session(session_id)
        for problem in self._corrupt(session_id, None):
            if await self._move_aside(problem) and problem.location == session_record:
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

    async def _agent(self, session_id: str, agent_id: str) -> None:
        for problem in self._corrupt(session_id, agent_id):
            if await self._move_aside(problem):
                await self._recreate_agent(session_id, agent_id, problem.location)
        for problem in self.problems:
            if problem.kind == "missing-record" and (problem.session_id, problem.agent_id) == (session_id, agent_id):
                await self._recreate_agent(session_id, agent_id, problem.location)
        mine = [p for p in self.problems if (p.session_id, p.agent_id) == (session_id, agent_id)]
        if self.inspector is None:
            for problem in unloadable(mine).values():
                await self._move_aside(problem)  # reports why nothing can be done here
        else:
            where = functools.partial(self.places.message, session_id, agent_id)
            self.repairs.extend(await fill_placeholders(self.repository, self.inspector, where, mine))
        await self._fix_head(session_id, agent_id)

    async def _recreate_agent(self, session_id: str, agent_id: str, location: str) -> None:
        try:
            await self.repository.create_agent(session_id, AgentRecord(agent_id=agent_id))
        except ConflictError:
            return
        self.repairs.append(
            Repair(action="recreated", location=location, detail="a new agent record (empty state, window from 0)")
        )

    async def _fix_head(self, session_id: str, agent_id: str) -> None:
        try:
            record = await self.repository.read_agent(session_id, agent_id)
        except CorruptRecordError:
            return
        if record is None:
            return
        head = await self.repository.message_head(session_id, agent_id, hint=None)
        stale = _hint_wrong(record, head) or _window_past(record, head)
        if stale and await set_head_hint(self.repository, session_id, agent_id, head):
            self.repairs.append(
                Repair(
                    action="updated-head",
                    location=f"session {session_id!r}, agent {agent_id!r} (agent record)",
                    detail=f"next_message_id {record.next_message_id} -> {head}",
                )
            )

    async def _move_aside(self, problem: Problem) -> bool:
        if self.inspector is None:
            self.repairs.append(
                Repair(
                    action="skipped",
                    location=problem.location,
                    detail=f"{self.repository.describe()} has no files to move aside; repair of corrupt records is "
                    "file-store only (the record was left as it is)",
                )
            )
            return False
        repair = await self.inspector.move_aside(problem.location, problem.detail)
        self.repairs.append(repair)
        return repair.action == "quarantined"
