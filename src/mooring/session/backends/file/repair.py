"""What verifying and repairing a file store needs beyond the repository contract.

:class:`FileStoreInspector` is the file store's :class:`mooring.session.verify.StoreInspector`:
the generic verifier asks it what is on disk (directories whose records do not parse, message
files after a gap, temp files left by writes a crash cut off, names no reader looks up,
symlinks and hard-linked files) and hands it the repairs only a directory allows. A repair
never deletes: a file is moved to ``<storage_dir>/.quarantine/<run>/<path relative to
storage_dir>``, with the same fsyncs as any other store write; a message that cannot be
loaded is replaced by a placeholder (:mod:`mooring.session._placeholder`) after its bytes are
kept there.

Nothing is followed: the tree is looked at with ``lstat`` through ``O_NOFOLLOW`` descriptors
(:mod:`mooring.session.backends.file._walk`). A symlink anywhere in a session is an error the
report names and repair leaves as it is (a symlinked record file is moved aside like a corrupt
one: the link itself, never its target); a regular file with a second hard link is one too,
and its name is moved aside, unless the repository was opened with ``allow_hard_links`` (then
it is a warning). A symlinked ``.quarantine`` is refused: nothing is moved, the report says so.
The quarantine itself is not searched for links (it keeps the links it was given).

Example::

    repository = FileSessionRepository("./sessions")
    report = await verify_store(repository, repair=True, inspector=FileStoreInspector(repository))
"""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from pathlib import Path

from mooring._ids import validate_id
from mooring._threads import run_blocking
from mooring.errors import InvalidIdentifierError
from mooring.session._layout import (
    AGENT_PREFIX,
    AGENTS,
    MESSAGES,
    MULTI_AGENT_PREFIX,
    MULTI_AGENTS,
    SESSION_PREFIX,
    encode,
    id_from,
    messages_parts,
    session_parts,
)
from mooring.session.backends.file import _fs, _walk
from mooring.session.backends.file._tree import LOCK_DIR
from mooring.session.backends.file.repository import FileSessionRepository
from mooring.session.records import MessageRecord
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
        self.allow_hard_links = repository.allow_hard_links
        self.stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        self.quarantine = self.root / QUARANTINE_DIR / self.stamp

    def locate(self, parts: Sequence[str]) -> str:
        return str(self.root.joinpath(*parts))

    # -- what is on disk ----------------------------------------------------------------------

    async def store_problems(self) -> list[Problem]:
        return await run_blocking(self._store_problems)

    async def session_ids(self) -> list[str]:
        return await run_blocking(self._scan_ids, [], SESSION_PREFIX, "session_id")

    async def agent_ids(self, session_id: str) -> list[str]:
        return await run_blocking(self._scan_ids, [*session_parts(session_id), AGENTS], AGENT_PREFIX, "agent_id")

    async def multi_agent_ids(self, session_id: str) -> list[str]:
        parts = [*session_parts(session_id), MULTI_AGENTS]
        return await run_blocking(self._scan_ids, parts, MULTI_AGENT_PREFIX, "multi_agent_id")

    async def message_ids(self, session_id: str, agent_id: str) -> set[int]:
        return await run_blocking(self._message_ids, messages_parts(session_id, agent_id))

    async def session_problems(self, session_id: str) -> list[Problem]:
        return await run_blocking(self._session_problems, session_id)

    def _scan_ids(self, parts: list[str], prefix: str, kind: str) -> list[str]:
        """The ids of the ``<prefix><id>`` directories (symlinks to one too: they are reported),
        skipping names no id can have."""
        found = []
        for name, st in _walk.entries(self.root, parts):
            found_id = id_from(name, prefix)
            usable = stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode)
            if usable and found_id is not None and _bad_id(found_id, kind) is None:
                found.append(found_id)
        return found

    def _message_ids(self, parts: list[str]) -> set[int]:
        names = (name for name, _ in _walk.entries(self.root, parts))
        return {int(m.group(1)) for name in names if (m := _MESSAGE_FILE.fullmatch(name)) is not None}

    def _store_problems(self) -> list[Problem]:
        problems = []
        for name, st in _walk.entries(self.root, []):
            if name in (QUARANTINE_DIR, LOCK_DIR) and not stat.S_ISDIR(st.st_mode):
                why: str | None = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"
                problems.append(
                    Problem(
                        severity="error",
                        kind="symlink" if stat.S_ISLNK(st.st_mode) else "stray-name",
                        session_id="",
                        location=str(self.root / name),
                        detail=f"{name} is {why}; mooring writes only into a real directory here, so repair "
                        "moves nothing and the locks refuse it; replace it with a directory",
                    )
                )
                continue
            session_id = id_from(name, SESSION_PREFIX)
            if session_id is None or stat.S_ISLNK(st.st_mode):
                continue  # not ours to judge (the store may share its directory), or a session's own report
            why = _bad_id(session_id, "session_id") or (None if stat.S_ISDIR(st.st_mode) else "it is not a directory")
            if why is not None:
                problems.append(_stray(session_id, None, self.root / name, f"no session can be named so: {why}"))
        return problems

    def _session_problems(self, session_id: str) -> list[Problem]:
        parts = session_parts(session_id)
        if _walk.is_symlink(self.root, parts):
            return [self._link(session_id, parts, None)]
        problems: list[Problem] = []
        cutoff = time.time() - STALE_TEMP_SECONDS
        for where, name, st, dfd in _walk.walk(self.root, parts):
            path = [*where, name]
            if stat.S_ISLNK(st.st_mode):
                problems.append(self._link(session_id, path, None))
            elif stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and not _fs.publishing(dfd, name, st):
                problems.append(self._link(session_id, path, st.st_nlink))
            elif stat.S_ISREG(st.st_mode) and _is_temp(name) and st.st_mtime < cutoff:
                problems.append(
                    Problem(
                        severity="warning",
                        kind="temp-file",
                        session_id=session_id,
                        location=self.locate(path),
                        detail="temp file left by a write cut off by a crash",
                        fix="move it to quarantine",
                    )
                )
        problems.extend(self._stray_names(session_id))
        return problems

    def _link(self, session_id: str, path: list[str], links: int | None) -> Problem:
        agent_id, message_id = _owner(path)
        record = path[-1] in ("session.json", "agent.json", "multi_agent.json") or message_id is not None
        if links is None:
            kind, severity = "symlink", "error"
            detail = "is a symlink; mooring never follows one, so what it stands for cannot load"
        else:
            kind = "hard-link"
            severity = "warning" if self.allow_hard_links else "error"
            detail = f"has {links} hard links; its content may be a file outside the store" + (
                " (allowed: the store was opened with allow_hard_links)" if self.allow_hard_links else ""
            )
        if severity == "warning" or not record:
            fix = None
        elif message_id is not None:
            fix = "move the link (not what it points to) to quarantine and put a placeholder at its id"
        else:
            fix = "move the link (not what it points to) to quarantine"
        return Problem(
            severity=severity,  # type: ignore[arg-type]
            kind=kind,
            session_id=session_id,
            agent_id=agent_id,
            message_id=message_id,
            location=self.locate(path),
            detail=f"{self.locate(path)} {detail}" + ("" if record or links is not None else "; left as it is"),
            fix=fix,
        )

    def _stray_names(self, session_id: str) -> list[Problem]:
        problems = []
        agents = [*session_parts(session_id), AGENTS]
        for name, _ in _walk.entries(self.root, agents):
            agent_id = id_from(name, AGENT_PREFIX)
            why = "expected agent_<id>" if agent_id is None else _bad_id(agent_id, "agent_id")
            if why is not None and not name.startswith("."):
                problems.append(
                    _stray(session_id, None, self.root.joinpath(*agents, name), f"no agent can be named so: {why}")
                )
        for agent_id in self._scan_ids(agents, AGENT_PREFIX, "agent_id"):
            messages = messages_parts(session_id, agent_id)
            for name, _ in _walk.entries(self.root, messages):
                if not name.startswith(".") and _MESSAGE_FILE.fullmatch(name) is None:
                    problems.append(
                        _stray(
                            session_id,
                            agent_id,
                            self.root.joinpath(*messages, name),
                            "not a message name (message_<N>.json)",
                        )
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

    async def move_aside(self, location: str, reason: str) -> Repair:
        try:
            target = await run_blocking(self._move, location)
        except FileNotFoundError:
            return Repair(action="skipped", location=location, detail="the file was gone already")
        except (_fs.SymlinkRefusedError, ValueError) as exc:
            return Repair(action="skipped", location=location, detail=f"nothing was moved: {exc}")
        return Repair(action="quarantined", location=location, to=target, detail=reason)

    async def put_placeholder(self, location: str, record: MessageRecord, reason: str, summary: str) -> list[Repair]:
        try:
            kept = await run_blocking(self._put, location, record)
        except (_fs.SymlinkRefusedError, ValueError) as exc:
            detail = f"no placeholder was written and nothing was moved: {exc}"
            return [Repair(action="skipped", location=location, message_id=record.message_id, detail=detail)]
        repairs = []
        if kept is not None:
            repairs.append(
                Repair(action="quarantined", location=location, to=kept, message_id=record.message_id, detail=reason)
            )
        what = f"message {record.message_id} is now a placeholder: {summary}"
        repairs.append(Repair(action="placeholder", location=location, message_id=record.message_id, detail=what))
        return repairs

    def _parts(self, location: str) -> list[str]:
        parts = list(Path(location).relative_to(self.root).parts)  # ValueError: outside the store
        if not parts or any(p in ("", ".", "..") for p in parts) or parts[0] == QUARANTINE_DIR:
            raise ValueError(f"{location} is not a path inside the store {self.root}")
        return parts

    def _move(self, location: str) -> str:
        parts = self._parts(location)
        with _walk.root_fd(self.root) as rfd, _fs.dir_fd(rfd, parts[:-1], create=False, root=str(self.root)) as src:
            os.stat(parts[-1], dir_fd=src, follow_symlinks=False)  # FileNotFoundError when gone
            with self._quarantine_dir(rfd, parts[:-1]) as dst:
                target = _walk.free_name(dst, parts[-1])
                # rename moves the entry itself: a symlink stays a symlink, a link keeps its inode.
                os.rename(parts[-1], target, src_dir_fd=src, dst_dir_fd=dst)
                # The move must survive a crash like any other store write.
                os.fsync(dst)
            os.fsync(src)
        return str(self.quarantine.joinpath(*parts[:-1], target))

    def _put(self, location: str, record: MessageRecord) -> str | None:
        """Keep the file at ``location`` (if any) in quarantine, then publish ``record`` there;
        at every moment the name holds the old file or the placeholder, never nothing."""
        parts = self._parts(location)
        if len(parts) < 2 or parts[-2] != MESSAGES or _MESSAGE_FILE.fullmatch(parts[-1]) is None:
            raise ValueError(f"{location} is not a message file")
        name = parts[-1]
        with _walk.root_fd(self.root) as rfd, _fs.dir_fd(rfd, parts[:-1], create=False, root=str(self.root)) as mfd:
            try:
                os.stat(name, dir_fd=mfd, follow_symlinks=False)
            except FileNotFoundError:
                temp = _fs.write_new_temp(mfd, encode(record.to_dict()), True)
                if not _fs.publish_new(mfd, temp, name):
                    raise ValueError(f"{location} was written meanwhile; it is left as it is") from None
                os.fsync(mfd)
                return None
            with self._quarantine_dir(rfd, parts[:-1]) as qfd:
                kept = _walk.keep_copy(mfd, name, qfd, name)
                if kept is None:  # no hard links here: move it, then publish (a crash between leaves a gap)
                    kept = _walk.free_name(qfd, name)
                    os.rename(name, kept, src_dir_fd=mfd, dst_dir_fd=qfd)
                os.fsync(qfd)
            temp = _fs.write_temp(mfd, encode(record.to_dict()), True)
            _fs.publish_replace(mfd, temp, name)
            os.fsync(mfd)
        return str(self.quarantine.joinpath(*parts[:-1], kept))

    def _quarantine_dir(self, rfd: int, parts: Sequence[str]) -> AbstractContextManager[int]:
        return _fs.dir_fd(rfd, [QUARANTINE_DIR, self.stamp, *parts], create=True, root=str(self.root))


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


def _is_temp(name: str) -> bool:
    """mooring's ``.mooring-*.tmp`` and Strands' ``.strands_*.tmp``."""
    return name.endswith(".tmp") and name.startswith(_TEMP_PREFIXES)


def _owner(path: list[str]) -> tuple[str | None, int | None]:
    """The agent id and message id a path inside a session names, where it names them."""
    agent_id = id_from(path[2], AGENT_PREFIX) if len(path) > 2 and path[1] == AGENTS else None
    message_id = None
    if agent_id is not None and len(path) == 5 and path[3] == MESSAGES:
        match = _MESSAGE_FILE.fullmatch(path[4])
        message_id = int(match.group(1)) if match is not None else None
    return agent_id, message_id
