"""What verifying and repairing a file store needs beyond the repository contract.

:class:`FileStoreInspector` is the file store's :class:`mooring.session.verify.StoreInspector`:
the generic verifier asks it what is on disk (directories whose records do not parse, message
files after a gap, temp files left by writes a crash cut off, names no reader looks up) and
hands it the repairs only a directory allows. A repair never deletes: a file is moved to
``<storage_dir>/.quarantine/<run>/<path relative to storage_dir>``, with the same fsyncs as
any other store write.

Example::

    repository = FileSessionRepository("./sessions")
    report = await verify_store(repository, repair=True, inspector=FileStoreInspector(repository))
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from mooring._ids import validate_id
from mooring._threads import run_blocking
from mooring.errors import InvalidIdentifierError
from mooring.session._layout import (
    AGENT_PREFIX,
    AGENTS,
    MULTI_AGENT_PREFIX,
    MULTI_AGENTS,
    SESSION_PREFIX,
    id_from,
    messages_parts,
    session_parts,
)
from mooring.session.backends.file import _fs
from mooring.session.backends.file.repository import FileSessionRepository
from mooring.session.repository import SessionRepository
from mooring.session.verify import Problem, Repair

__all__ = ["QUARANTINE_DIR", "STALE_TEMP_SECONDS", "FileStoreInspector", "inspector_for"]

QUARANTINE_DIR = ".quarantine"
# Temp files live for the milliseconds of one write; one this old belongs to a dead writer.
STALE_TEMP_SECONDS = 60.0

_MESSAGE_FILE = re.compile(r"message_(0|[1-9][0-9]*)\.json")
_TEMP_PREFIXES = (".mooring-", ".strands_")  # mooring's and Strands' temp names


def inspector_for(repository: SessionRepository) -> FileStoreInspector | None:
    """The inspector of ``repository`` when it is a file store, else None."""
    return FileStoreInspector(repository) if isinstance(repository, FileSessionRepository) else None


class FileStoreInspector:
    """Looks at the directory tree of one :class:`FileSessionRepository`; one per verify run
    (its quarantine folder is named when it is built)."""

    def __init__(self, repository: FileSessionRepository) -> None:
        self.root = repository.storage_dir
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        self.quarantine = self.root / QUARANTINE_DIR / stamp

    def locate(self, parts: Sequence[str]) -> str:
        return str(self.root.joinpath(*parts))

    # -- what is on disk ----------------------------------------------------------------------

    async def store_problems(self) -> list[Problem]:
        return await run_blocking(self._stray_sessions)

    async def session_ids(self) -> list[str]:
        return await run_blocking(_scan_ids, self.root, SESSION_PREFIX, "session_id")

    async def agent_ids(self, session_id: str) -> list[str]:
        return await run_blocking(_scan_ids, self._dir(*session_parts(session_id), AGENTS), AGENT_PREFIX, "agent_id")

    async def multi_agent_ids(self, session_id: str) -> list[str]:
        directory = self._dir(*session_parts(session_id), MULTI_AGENTS)
        return await run_blocking(_scan_ids, directory, MULTI_AGENT_PREFIX, "multi_agent_id")

    async def message_ids(self, session_id: str, agent_id: str) -> set[int]:
        return await run_blocking(_scan_message_ids, self._dir(*messages_parts(session_id, agent_id)))

    async def session_problems(self, session_id: str) -> list[Problem]:
        return await run_blocking(self._session_problems, session_id)

    def _dir(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def _stray_sessions(self) -> list[Problem]:
        problems = []
        for name, is_dir in _entries(self.root):
            session_id = id_from(name, SESSION_PREFIX)
            if session_id is None:
                continue  # not ours to judge: the store may share its directory
            why = _bad_id(session_id, "session_id") or (None if is_dir else "it is not a directory")
            if why is not None:
                problems.append(_stray(session_id, None, self._dir(name), f"no session can be named so: {why}"))
        return problems

    def _session_problems(self, session_id: str) -> list[Problem]:
        problems = [
            Problem(
                severity="warning",
                kind="temp-file",
                session_id=session_id,
                location=str(path),
                detail="temp file left by a write cut off by a crash",
            )
            for path in _stale_temp_files(self._dir(*session_parts(session_id)))
        ]
        agents = self._dir(*session_parts(session_id), AGENTS)
        for name, _ in _entries(agents):
            agent_id = id_from(name, AGENT_PREFIX)
            why = "expected agent_<id>" if agent_id is None else _bad_id(agent_id, "agent_id")
            if why is not None and not name.startswith("."):
                problems.append(_stray(session_id, None, agents / name, f"no agent can be named so: {why}"))
        for agent_id in _scan_ids(agents, AGENT_PREFIX, "agent_id"):
            messages = self._dir(*messages_parts(session_id, agent_id))
            for name, _ in _entries(messages):
                if not name.startswith(".") and _MESSAGE_FILE.fullmatch(name) is None:
                    problems.append(
                        _stray(session_id, agent_id, messages / name, "not a message name (message_<N>.json)")
                    )
        return problems

    # -- repairs ------------------------------------------------------------------------------

    async def repair_session(self, session_id: str, problems: Sequence[Problem]) -> list[Repair]:
        # Stray names are reported only: they may be someone's file, and nothing reads them.
        return [
            await self.move_aside(p.location, p.detail)
            for p in problems
            if p.kind == "temp-file" and p.session_id == session_id
        ]

    async def make_dense(self, session_id: str, agent_id: str) -> list[Repair]:
        directory = self._dir(*messages_parts(session_id, agent_id))
        ids = await run_blocking(_scan_message_ids, directory)
        dense = 0
        while dense in ids:
            dense += 1
        return [
            await self.move_aside(
                str(directory / f"message_{message_id}.json"),
                f"unreachable after the gap at message {dense}; moved aside so the ids are dense again",
            )
            for message_id in sorted(i for i in ids if i > dense)
        ]

    async def move_aside(self, location: str, reason: str) -> Repair:
        source = Path(location)
        try:
            target = await run_blocking(self._move, source)
        except FileNotFoundError:
            return Repair(action="skipped", location=location, detail="the file was gone already")
        return Repair(action="quarantined", location=location, to=str(target), detail=reason)

    def _move(self, source: Path) -> Path:
        if self.quarantine.parent.is_symlink():
            raise _fs.SymlinkRefusedError(f"refusing {self.quarantine.parent}: it is a symlink")
        target = self.quarantine / source.relative_to(self.root)
        suffix = 1
        while target.exists():  # rename would replace it, and a quarantined file is never lost
            target = target.with_name(f"{target.name}.{suffix}")
            suffix += 1
        target.parent.mkdir(parents=True, exist_ok=True, mode=_fs.DIR_MODE)
        os.rename(source, target)
        # The move must survive a crash like any other store write.
        for directory in {source.parent, target.parent}:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return target


def _stray(session_id: str, agent_id: str | None, path: Path, detail: str) -> Problem:
    return Problem(
        severity="warning",
        kind="stray-name",
        session_id=session_id,
        agent_id=agent_id,
        location=str(path),
        detail=f"{detail}; nothing reads it, so it was left as it is",
    )


def _bad_id(value: str, kind: str) -> str | None:
    try:
        validate_id(value, kind)
    except InvalidIdentifierError as exc:
        return str(exc)
    return None


def _entries(directory: Path) -> list[tuple[str, bool]]:
    """(name, is a real directory) of each entry; nothing when ``directory`` is missing."""
    try:
        with os.scandir(directory) as entries:
            return sorted((e.name, e.is_dir(follow_symlinks=False)) for e in entries)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _scan_ids(directory: Path, prefix: str, kind: str) -> list[str]:
    """The ids of the ``<prefix><id>`` directories, skipping names no id can have."""
    found = []
    for name, is_dir in _entries(directory):
        found_id = id_from(name, prefix)
        if is_dir and found_id is not None and _bad_id(found_id, kind) is None:
            found.append(found_id)
    return found


def _scan_message_ids(directory: Path) -> set[int]:
    return {int(m.group(1)) for name, _ in _entries(directory) if (m := _MESSAGE_FILE.fullmatch(name)) is not None}


def _stale_temp_files(session_dir: Path) -> list[Path]:
    """Temp files (mooring's ``.mooring-*.tmp``, Strands' ``.strands_*.tmp``) left by crashed writes."""
    found = []
    cutoff = time.time() - STALE_TEMP_SECONDS
    for directory, _, names in os.walk(session_dir):
        for name in names:
            if name.endswith(".tmp") and name.startswith(_TEMP_PREFIXES):
                path = Path(directory, name)
                try:
                    if path.lstat().st_mtime < cutoff:
                        found.append(path)
                except FileNotFoundError:
                    continue  # a live write finished meanwhile
    return sorted(found)
