"""The file backend: the Strands Agents directory layout, made safe for many processes.

Layout under ``storage_dir``::

    session_<id>/session.json
    session_<id>/agents/agent_<id>/agent.json
    session_<id>/agents/agent_<id>/messages/message_<N>.json
    session_<id>/multi_agents/multi_agent_<id>/multi_agent.json

New records are published with ``link`` (which fails if the name is taken: the conditional
append), updates with ``rename``; both after an fsync of the temp file and followed by an
fsync of the directory. Agent-record compare-and-set and the invocation lease use
``flock`` on small lock files beside the records, which the kernel releases if the process
dies. No symlink is followed anywhere under ``storage_dir``.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import stat
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from mooring._ids import validate_id
from mooring._json import BYTES_MARKER
from mooring._threads import run_blocking
from mooring.errors import (
    ConflictError,
    LeaseTimeoutError,
    SessionNotFoundError,
    StorageUnavailableError,
)
from mooring.session import _fs
from mooring.session.records import (
    AgentRecord,
    MessageRecord,
    MultiAgentRecord,
    SessionPage,
    SessionRecord,
    now_iso,
)
from mooring.session.repository import Lease, SessionRepository
from mooring.session.util import page_sessions

T = TypeVar("T")
Durability = Literal["fsync", "none"]

# Lock files live outside the session tree, so the tree stays exactly the Strands layout.
_LOCK_DIR = ".mooring-locks"
BYTES_MARKER_RAW = BYTES_MARKER.encode()
_KEPT_DIRS = 256  # directory fds kept open per repository (see _open)
_SMALL_READ = 8  # message reads up to this many records run in place (see _small)


def default_storage_dir() -> Path:
    """``$MOORING_HOME/sessions``, else the user data directory; never a temporary directory."""
    home = os.environ.get("MOORING_HOME")
    if home:
        return Path(home).expanduser() / "sessions"
    import platformdirs

    return Path(platformdirs.user_data_dir("mooring", appauthor=False)) / "sessions"


def _message_name(message_id: int) -> str:
    return f"message_{message_id}.json"


class FileSessionRepository(SessionRepository):
    """Sessions as a directory tree, compatible with Strands' FileSessionManager.

    ``durability="fsync"`` (the default) makes every acknowledged write survive a power loss;
    ``"none"`` skips the fsyncs for throwaway data.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, storage_dir: str | os.PathLike[str] | None = None, *, durability: Durability = "fsync") -> None:
        if durability not in ("fsync", "none"):
            raise ValueError(f"durability must be 'fsync' or 'none', got {durability!r}")
        self.storage_dir = Path(storage_dir) if storage_dir is not None else default_storage_dir()
        self.durable = durability == "fsync"
        self._dirs: OrderedDict[tuple[str, ...], int] = OrderedDict()
        self._dirs_lock = threading.Lock()
        try:
            self.storage_dir.mkdir(mode=_fs.DIR_MODE, parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailableError(f"cannot create storage directory {self.storage_dir}: {exc}") from exc

    def describe(self) -> str:
        return f"file:{self.storage_dir}"

    # -- plumbing -----------------------------------------------------------------------------

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        # Anything that may fsync, or read many files, runs off the event loop.
        return await run_blocking(self._guard, func, *args)

    async def _small(self, func: Callable[..., T], *args: Any) -> T:
        # A handful of syscalls on local files (a stat, one small read, a flock attempt) costs
        # microseconds, less than handing it to a worker thread and back; run it in place. So
        # do writes when nothing is fsynced.
        return self._guard(func, *args)

    def _guard(self, func: Callable[..., T], *args: Any) -> T:
        try:
            return func(*args)
        except (FileNotFoundError, NotADirectoryError):
            raise
        except OSError as exc:
            raise StorageUnavailableError(f"file store {self.storage_dir} failed: {exc}") from exc

    def _root(self) -> int:
        return os.open(self.storage_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def _open(self, parts: Sequence[str], *, create: bool) -> int:
        """A new fd of the directory ``parts`` under the store; the caller closes it.

        Opening a chain without following symlinks costs one ``open`` per component, several
        times per turn; directories already opened are kept and handed out as ``dup``s. A kept
        directory that was removed since (its link count dropped to 0, as after a session
        delete) is opened again from the root.
        """
        key = tuple(parts)
        with self._dirs_lock:
            kept = self._dirs.get(key)
            if kept is not None:
                if os.fstat(kept).st_nlink > 0:
                    self._dirs.move_to_end(key)
                    return os.dup(kept)
                del self._dirs[key]
                os.close(kept)
        root = self._root()
        try:
            fd = _fs.open_dir(root, parts, create=create, root=str(self.storage_dir))
        finally:
            os.close(root)
        with self._dirs_lock:
            if key not in self._dirs:
                self._dirs[key] = os.dup(fd)
                while len(self._dirs) > _KEPT_DIRS:
                    os.close(self._dirs.popitem(last=False)[1])
        return fd

    def _forget_dirs(self, first: str) -> None:
        with self._dirs_lock:
            for key in [k for k in self._dirs if k[:1] == (first,) or k[1:2] == (first,)]:
                os.close(self._dirs.pop(key))

    async def close(self) -> None:
        with self._dirs_lock:
            while self._dirs:
                os.close(self._dirs.popitem()[1])

    def _where(self, *parts: str) -> str:
        return str(self.storage_dir.joinpath(*parts))

    @staticmethod
    def _session_parts(session_id: str) -> list[str]:
        return [f"session_{validate_id(session_id, 'session_id')}"]

    def _agent_parts(self, session_id: str, agent_id: str) -> list[str]:
        return [*self._session_parts(session_id), "agents", f"agent_{validate_id(agent_id, 'agent_id')}"]

    def _open_session(self, session_id: str) -> int:
        parts = self._session_parts(session_id)
        try:
            fd = self._open(parts, create=False)
        except FileNotFoundError:
            raise SessionNotFoundError(f"session {session_id!r} does not exist in {self.storage_dir}") from None
        if not _fs.exists(fd, "session.json"):
            os.close(fd)
            raise SessionNotFoundError(f"session {session_id!r} does not exist in {self.storage_dir}")
        return fd

    def _open_agent(self, session_id: str, agent_id: str, sub: Sequence[str] = ()) -> int:
        try:
            return self._open([*self._agent_parts(session_id, agent_id), *sub], create=False)
        except FileNotFoundError:
            pass  # find out what is missing, and create ``sub``
        sfd = self._open_session(session_id)
        try:
            afd = _fs.open_dir(
                sfd,
                ["agents", f"agent_{validate_id(agent_id, 'agent_id')}"],
                create=False,
                root=self._where(*self._session_parts(session_id)),
            )
        except FileNotFoundError:
            raise SessionNotFoundError(f"agent {agent_id!r} does not exist in session {session_id!r}") from None
        finally:
            os.close(sfd)
        if not sub:
            return afd
        try:
            return _fs.open_dir(afd, sub, create=True, root=self._where(*self._agent_parts(session_id, agent_id)))
        finally:
            os.close(afd)

    def _publish_new(self, dfd: int, name: str, data: dict[str, Any]) -> bool:
        temp = _fs.write_temp(dfd, _fs.encode(data), self.durable)
        taken = not _fs.publish_new(dfd, temp, name)
        if not taken and self.durable:
            _fs.fsync_dir(dfd)
        return not taken

    def _publish_replace(self, dfd: int, name: str, data: dict[str, Any]) -> None:
        temp = _fs.write_temp(dfd, _fs.encode(data), self.durable)
        _fs.publish_replace(dfd, temp, name)
        if self.durable:
            _fs.fsync_dir(dfd)

    def _lock_file(self, session_id: str, name: str) -> int:
        """Open (creating) the lock file ``name`` of a session. Lock files are never removed
        while the session exists: unlinking a held flock file would let two holders in."""
        lfd = self._open([_LOCK_DIR, *self._session_parts(session_id)], create=True)
        try:
            return os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, _fs.FILE_MODE, dir_fd=lfd)
        finally:
            os.close(lfd)

    def _locked(self, session_id: str, name: str) -> int:
        fd = self._lock_file(session_id, name)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    @staticmethod
    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    # -- sessions -----------------------------------------------------------------------------

    def _create_session(self, session: SessionRecord) -> SessionRecord:
        fd = self._open(self._session_parts(session.session_id), create=True)
        try:
            for sub in ("agents", "multi_agents"):
                os.close(_fs.open_dir(fd, [sub], create=True, root=self._where(f"session_{session.session_id}")))
            if not self._publish_new(fd, "session.json", session.to_dict()):
                raise ConflictError(f"session {session.session_id!r} already exists in {self.storage_dir}")
            return session
        finally:
            os.close(fd)

    async def create_session(self, session: SessionRecord) -> SessionRecord:
        return await self._run(self._create_session, session)

    def _read_session(self, session_id: str) -> SessionRecord | None:
        parts = self._session_parts(session_id)
        try:
            fd = self._open(parts, create=False)
        except FileNotFoundError:
            return None
        try:
            data = _fs.read_json(fd, "session.json", self._where(*parts, "session.json"))
        finally:
            os.close(fd)
        return None if data is None else SessionRecord.from_dict(data, self._where(*parts, "session.json"))

    async def read_session(self, session_id: str) -> SessionRecord | None:
        return await self._small(self._read_session, session_id)

    def _list_sessions(self) -> list[SessionRecord]:
        records = []
        with os.scandir(self.storage_dir) as entries:
            for entry in entries:
                if not entry.name.startswith("session_") or not entry.is_dir(follow_symlinks=False):
                    continue
                try:
                    record = self._read_session(entry.name[len("session_") :])
                except Exception:  # an unreadable session must not hide the others
                    continue
                if record is not None:
                    records.append(record)
        return records

    async def list_sessions(self, *, cursor: str | None = None, limit: int = 100) -> SessionPage:
        records = await self._run(self._list_sessions)
        return page_sessions(records, cursor=cursor, limit=limit)

    def _delete_session(self, session_id: str) -> bool:
        name = self._session_parts(session_id)[0]
        root = self._root()
        try:
            grave = f".deleted-{uuid.uuid4().hex}"
            try:
                # One rename makes the whole session disappear at once; the slow removal follows.
                os.rename(name, grave, src_dir_fd=root, dst_dir_fd=root)
            except FileNotFoundError:
                return False
            if self.durable:
                os.fsync(root)
        finally:
            os.close(root)
        self._forget_dirs(name)
        shutil.rmtree(self.storage_dir / grave, ignore_errors=True)
        shutil.rmtree(self.storage_dir / _LOCK_DIR / name, ignore_errors=True)
        return True

    async def delete_session(self, session_id: str) -> bool:
        return await self._run(self._delete_session, session_id)

    # -- agents -------------------------------------------------------------------------------

    def _list_agents(self, session_id: str) -> list[str]:
        fd = self._open_session(session_id)
        try:
            try:
                afd = _fs.open_dir(fd, ["agents"], create=False, root=self._where(f"session_{session_id}"))
            except FileNotFoundError:
                return []
            try:
                names = os.listdir(afd)
            finally:
                os.close(afd)
        finally:
            os.close(fd)
        return sorted(n[len("agent_") :] for n in names if n.startswith("agent_"))

    async def list_agents(self, session_id: str) -> list[str]:
        return await self._run(self._list_agents, session_id)

    def _create_agent(self, session_id: str, agent: AgentRecord) -> AgentRecord:
        validate_id(agent.agent_id, "agent_id")
        sfd = self._open_session(session_id)
        try:
            afd = _fs.open_dir(
                sfd,
                ["agents", f"agent_{agent.agent_id}"],
                create=True,
                root=self._where(f"session_{session_id}"),
            )
        finally:
            os.close(sfd)
        try:
            os.close(_fs.open_dir(afd, ["messages"], create=True, root=self._where(f"session_{session_id}")))
            stored = agent.copy()
            stored.version = 1
            if not self._publish_new(afd, "agent.json", stored.to_dict()):
                raise ConflictError(f"agent {agent.agent_id!r} already exists in session {session_id!r}", version=1)
            return stored
        finally:
            os.close(afd)

    async def create_agent(self, session_id: str, agent: AgentRecord) -> AgentRecord:
        return await self._run(self._create_agent, session_id, agent)

    def _read_agent(self, session_id: str, agent_id: str) -> AgentRecord | None:
        parts = self._agent_parts(session_id, agent_id)
        try:
            fd = self._open(parts, create=False)
        except FileNotFoundError:
            return None
        try:
            data = _fs.read_json(fd, "agent.json", self._where(*parts, "agent.json"))
        finally:
            os.close(fd)
        return None if data is None else AgentRecord.from_dict(data, self._where(*parts, "agent.json"))

    async def read_agent(self, session_id: str, agent_id: str) -> AgentRecord | None:
        return await self._small(self._read_agent, session_id, agent_id)

    def _update_agent(self, session_id: str, agent: AgentRecord, expected_version: int) -> AgentRecord:
        afd = self._open_agent(session_id, agent.agent_id)
        try:
            lock = self._locked(session_id, f"agent_{agent.agent_id}.record")
            try:
                where = self._where(*self._agent_parts(session_id, agent.agent_id), "agent.json")
                raw = _fs.read_json(afd, "agent.json", where)
                current = AgentRecord.from_dict(raw, where) if raw is not None else None
                stored_version = current.version if current else 0
                if current is None or stored_version != expected_version:
                    raise ConflictError(
                        f"agent {agent.agent_id!r} in session {session_id!r} is at version {stored_version}, "
                        f"not {expected_version}",
                        version=stored_version,
                    )
                new = agent.copy()
                new.version = expected_version + 1
                new.created_at = current.created_at or new.created_at
                new.updated_at = now_iso()
                self._publish_replace(afd, "agent.json", new.to_dict())
                return new
            finally:
                self._unlock(lock)
        finally:
            os.close(afd)

    async def update_agent(self, session_id: str, agent: AgentRecord, *, expected_version: int) -> AgentRecord:
        return await (self._run if self.durable else self._small)(
            self._update_agent, session_id, agent, expected_version
        )

    # -- messages -----------------------------------------------------------------------------

    def _append(self, session_id: str, agent_id: str, messages: Sequence[MessageRecord]) -> int:
        mfd = self._open_agent(session_id, agent_id, ["messages"])
        try:
            if not messages:
                return self._head(mfd, None)
            first = messages[0].message_id
            for offset, record in enumerate(messages):
                if record.message_id != first + offset:
                    raise ValueError("appended message ids must be contiguous")
            if first < 0 or (first > 0 and not _fs.exists(mfd, _message_name(first - 1))):
                head = self._head(mfd, first)
                raise ConflictError(
                    f"message id {first} is not the next free id ({head}) for agent {agent_id!r} "
                    f"in session {session_id!r}",
                    head=head,
                )
            temps = [_fs.write_temp(mfd, _fs.encode(r.to_dict()), self.durable) for r in messages]
            published = 0
            try:
                for record, temp in zip(messages, temps, strict=False):
                    if not _fs.publish_new(mfd, temp, _message_name(record.message_id)):
                        head = self._head(mfd, record.message_id)
                        raise ConflictError(
                            f"message id {record.message_id} was already taken for agent {agent_id!r} "
                            f"in session {session_id!r} (head is {head})",
                            head=head,
                        )
                    published += 1
            finally:
                for temp in temps[published + 1 :]:
                    _fs._unlink_quietly(mfd, temp)
                if published and self.durable:
                    _fs.fsync_dir(mfd)
            return messages[-1].message_id + 1
        finally:
            os.close(mfd)

    async def append_messages(self, session_id: str, agent_id: str, messages: Sequence[MessageRecord]) -> int:
        return await (self._run if self.durable else self._small)(self._append, session_id, agent_id, list(messages))

    def _head(self, mfd: int, hint: int | None) -> int:
        """Find the first missing id by galloping from ``hint`` (ids are dense)."""

        def has(i: int) -> bool:
            return _fs.exists(mfd, _message_name(i))

        start = max(hint or 0, 0)
        if has(start):
            low, step = start, 1  # low exists
            while has(low + step):
                low += step
                step *= 2
            high = low + step  # missing
        else:
            if start == 0 or has(start - 1):
                return start
            high, step = start - 1, 1  # high missing
            low = -1
            while high - step >= 0:
                if has(high - step):
                    low = high - step
                    break
                high -= step
                step *= 2
        while high - low > 1:
            mid = (low + high) // 2
            if has(mid):
                low = mid
            else:
                high = mid
        return low + 1

    def _message_head(self, session_id: str, agent_id: str, hint: int | None) -> int:
        try:
            mfd = self._open([*self._agent_parts(session_id, agent_id), "messages"], create=False)
        except FileNotFoundError:
            return 0
        try:
            return self._head(mfd, hint)
        finally:
            os.close(mfd)

    async def message_head(self, session_id: str, agent_id: str, *, hint: int | None = None) -> int:
        return await self._small(self._message_head, session_id, agent_id, hint)

    def _read_messages(self, session_id: str, agent_id: str, start: int, end: int | None) -> list[MessageRecord]:
        parts = [*self._agent_parts(session_id, agent_id), "messages"]
        try:
            mfd = self._open(parts, create=False)
        except FileNotFoundError:
            return []
        try:
            start = max(start, 0)
            stop = self._head(mfd, start) if end is None else end
            base = self.storage_dir.joinpath(*parts)
            out = []
            for message_id in range(start, stop):
                name = _message_name(message_id)
                raw = _fs.read_bytes(mfd, name, lambda: str(base / name))  # noqa: B023 (used at once)
                if raw is None:
                    continue
                where = f"{base}/{name}"
                out.append(
                    MessageRecord.from_dict(
                        _fs.parse(raw, where), where, expected_id=message_id, has_bytes=BYTES_MARKER_RAW in raw
                    )
                )
            return out
        finally:
            os.close(mfd)

    async def read_messages(
        self, session_id: str, agent_id: str, start: int = 0, end: int | None = None
    ) -> list[MessageRecord]:
        small = end is not None and end - start <= _SMALL_READ
        return await (self._small if small else self._run)(self._read_messages, session_id, agent_id, start, end)

    def _update_message(self, session_id: str, agent_id: str, message: MessageRecord) -> None:
        mfd = self._open_agent(session_id, agent_id, ["messages"])
        try:
            name = _message_name(message.message_id)
            where = self._where(*self._agent_parts(session_id, agent_id), "messages", name)
            current = _fs.read_json(mfd, name, where)
            if current is None:
                raise SessionNotFoundError(f"message {message.message_id} does not exist ({where})")
            record = MessageRecord(
                message_id=message.message_id,
                message=message.message,
                redact_message=message.redact_message,
                created_at=str(current.get("created_at") or message.created_at),
                updated_at=now_iso(),
                extra=message.extra,
            )
            self._publish_replace(mfd, name, record.to_dict())
        finally:
            os.close(mfd)

    async def update_message(self, session_id: str, agent_id: str, message: MessageRecord) -> None:
        await (self._run if self.durable else self._small)(self._update_message, session_id, agent_id, message)

    def _truncate(self, session_id: str, agent_id: str, new_head: int, expected_head: int) -> None:
        mfd = self._open_agent(session_id, agent_id, ["messages"])
        try:
            head = self._head(mfd, expected_head)
            if head != expected_head:
                raise ConflictError(f"head is {head}, not {expected_head}", head=head)
            for message_id in range(head - 1, max(new_head, 0) - 1, -1):
                _fs._unlink_quietly(mfd, _message_name(message_id))
            if self.durable:
                _fs.fsync_dir(mfd)
        finally:
            os.close(mfd)

    async def truncate_messages(self, session_id: str, agent_id: str, new_head: int, *, expected_head: int) -> None:
        await self._run(self._truncate, session_id, agent_id, new_head, expected_head)

    # -- multi-agent records ------------------------------------------------------------------

    def _multi_parts(self, session_id: str, multi_agent_id: str) -> list[str]:
        return [
            *self._session_parts(session_id),
            "multi_agents",
            f"multi_agent_{validate_id(multi_agent_id, 'multi_agent_id')}",
        ]

    def _create_multi(self, session_id: str, record: MultiAgentRecord) -> MultiAgentRecord:
        sfd = self._open_session(session_id)
        try:
            fd = _fs.open_dir(
                sfd,
                self._multi_parts(session_id, record.multi_agent_id)[1:],
                create=True,
                root=self._where(f"session_{session_id}"),
            )
        finally:
            os.close(sfd)
        try:
            stored = MultiAgentRecord(
                multi_agent_id=record.multi_agent_id,
                state=dict(record.state),
                version=1,
                created_at=record.created_at,
                updated_at=record.updated_at,
            )
            if not self._publish_new(fd, "multi_agent.json", stored.to_dict()):
                raise ConflictError(f"multi-agent {record.multi_agent_id!r} already exists", version=1)
            return stored
        finally:
            os.close(fd)

    async def create_multi_agent(self, session_id: str, record: MultiAgentRecord) -> MultiAgentRecord:
        return await self._run(self._create_multi, session_id, record)

    def _read_multi(self, session_id: str, multi_agent_id: str) -> MultiAgentRecord | None:
        parts = self._multi_parts(session_id, multi_agent_id)
        try:
            fd = self._open(parts, create=False)
        except FileNotFoundError:
            return None
        try:
            data = _fs.read_json(fd, "multi_agent.json", self._where(*parts, "multi_agent.json"))
        finally:
            os.close(fd)
        return None if data is None else MultiAgentRecord.from_dict(data, self._where(*parts, "multi_agent.json"))

    async def read_multi_agent(self, session_id: str, multi_agent_id: str) -> MultiAgentRecord | None:
        return await self._small(self._read_multi, session_id, multi_agent_id)

    def _list_multi(self, session_id: str) -> list[str]:
        fd = self._open_session(session_id)
        try:
            try:
                mfd = _fs.open_dir(fd, ["multi_agents"], create=False, root=self._where(f"session_{session_id}"))
            except FileNotFoundError:
                return []
            try:
                names = [n for n in os.listdir(mfd) if n.startswith("multi_agent_")]
                return sorted(n[len("multi_agent_") :] for n in names if self._has_multi_record(mfd, n))
            finally:
                os.close(mfd)
        finally:
            os.close(fd)

    @staticmethod
    def _has_multi_record(mfd: int, name: str) -> bool:
        try:
            st = os.stat(f"{name}/multi_agent.json", dir_fd=mfd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return False
        return stat.S_ISREG(st.st_mode)

    async def list_multi_agents(self, session_id: str) -> list[str]:
        return await self._run(self._list_multi, session_id)

    def _update_multi(self, session_id: str, record: MultiAgentRecord, expected_version: int) -> MultiAgentRecord:
        os.close(self._open_session(session_id))  # raises SessionNotFoundError
        parts = self._multi_parts(session_id, record.multi_agent_id)
        try:
            fd = self._open(parts, create=False)
        except FileNotFoundError:
            raise ConflictError(f"multi-agent {record.multi_agent_id!r} does not exist", version=0) from None
        try:
            lock = self._locked(session_id, f"multi_agent_{record.multi_agent_id}.record")
            try:
                where = self._where(*parts, "multi_agent.json")
                raw = _fs.read_json(fd, "multi_agent.json", where)
                current = MultiAgentRecord.from_dict(raw, where) if raw is not None else None
                stored_version = current.version if current else 0
                if current is None or stored_version != expected_version:
                    raise ConflictError(
                        f"multi-agent {record.multi_agent_id!r} is at version {stored_version}, not {expected_version}",
                        version=stored_version,
                    )
                new = MultiAgentRecord(
                    multi_agent_id=record.multi_agent_id,
                    state=dict(record.state),
                    version=expected_version + 1,
                    created_at=current.created_at,
                    updated_at=now_iso(),
                )
                self._publish_replace(fd, "multi_agent.json", new.to_dict())
                return new
            finally:
                self._unlock(lock)
        finally:
            os.close(fd)

    async def update_multi_agent(
        self, session_id: str, record: MultiAgentRecord, *, expected_version: int
    ) -> MultiAgentRecord:
        return await self._run(self._update_multi, session_id, record, expected_version)

    # -- leases -------------------------------------------------------------------------------

    def _open_lease_file(self, session_id: str, agent_id: str) -> int:
        os.close(self._open_session(session_id))  # raises SessionNotFoundError
        return self._lock_file(session_id, f"agent_{validate_id(agent_id, 'agent_id')}.lease")

    @staticmethod
    def _try_flock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    async def acquire_lease(self, session_id: str, agent_id: str, *, ttl: float, wait: float) -> Lease:
        fd = await self._small(self._open_lease_file, session_id, agent_id)
        deadline = time.monotonic() + max(wait, 0.0)
        delay = 0.001
        try:
            while not self._try_flock(fd):
                if time.monotonic() >= deadline:
                    raise LeaseTimeoutError(
                        f"session {session_id!r}, agent {agent_id!r} is busy: another invocation holds its "
                        f"lease (waited {wait:g}s)"
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.02)
        except BaseException:
            os.close(fd)
            raise
        return Lease(session_id=session_id, agent_id=agent_id, token=uuid.uuid4().hex, expires_at=None, handle=fd)

    async def renew_lease(self, lease: Lease, *, ttl: float) -> Lease:
        return lease  # the kernel holds a flock until release or process death: nothing expires

    async def release_lease(self, lease: Lease) -> None:
        fd = lease.handle
        if isinstance(fd, int) and fd >= 0:
            lease.handle = None
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
