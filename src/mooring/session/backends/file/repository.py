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

import fcntl
import logging
import os
import shutil
import stat
import uuid
from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import unquote, urlsplit

from typing_extensions import Self

from mooring._gc import collection_paused
from mooring._json import BYTES_MARKER
from mooring.errors import (
    ConfigurationError,
    ConflictError,
    CorruptRecordError,
    SessionNotFoundError,
)
from mooring.session._head import find_head
from mooring.session._layout import agent_name, agent_parts, encode, message_name, multi_agent_parts, session_parts
from mooring.session._threaded import Operation, ThreadedRepository
from mooring.session.backends.file import _fs
from mooring.session.backends.file._tree import LOCK_DIR, FileTree
from mooring.session.records import (
    AgentRecord,
    MessageRecord,
    MultiAgentRecord,
    SessionPage,
    SessionRecord,
    now_iso,
    page_sessions,
    version_conflict,
)
from mooring.session.repository import Capability, Lease
from mooring.session.url import default_storage_dir, query_options, without_query

logger = logging.getLogger(__name__)

Durability = Literal["fsync", "none"]

BYTES_MARKER_RAW = BYTES_MARKER.encode()
_SMALL_READ = 8  # message reads up to this many records run in place (see _runs_inline)
_ALWAYS_INLINE: frozenset[Operation] = frozenset(
    {"read_session", "read_agent", "message_head", "read_multi_agent", "acquire_lease", "renew_lease", "release_lease"}
)
_READS: frozenset[Operation] = frozenset({"read_messages"})
_WRITES: frozenset[Operation] = frozenset({"update_agent", "append_messages", "update_message"})


class FileSessionRepository(FileTree, ThreadedRepository):
    """Sessions as a directory tree, compatible with Strands' FileSessionManager.

    ``durability="fsync"`` (the default) makes every acknowledged write survive a power loss;
    ``"none"`` skips the fsyncs for throwaway data. A record file with a second hard link is
    refused with :class:`CorruptRecordError` (the link may lead to a file outside the store)
    unless ``allow_hard_links`` (for example a store copied with ``cp -al``).
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    lease_poll: ClassVar[tuple[float, float]] = (0.001, 0.02)  # a local flock frees in microseconds
    inline_when_alone: ClassVar[bool] = True  # local syscalls; a lease try never blocks

    def __init__(
        self,
        storage_dir: str | os.PathLike[str] | None = None,
        *,
        durability: Durability = "fsync",
        allow_hard_links: bool | str = False,
    ) -> None:
        if durability not in ("fsync", "none"):
            raise ValueError(f"durability must be 'fsync' or 'none', got {durability!r}")
        super().__init__(
            Path(storage_dir) if storage_dir is not None else default_storage_dir(),
            durability == "fsync",
            allow_hard_links=_flag(allow_hard_links, "allow_hard_links"),
        )

    @classmethod
    def from_url(cls, url: str) -> Self:
        """``/path``, ``file:///path`` (``?durability=none`` skips fsync, ``?allow_hard_links=true``
        loads records that have a second hard link)."""
        parts = urlsplit(url)
        if parts.scheme.lower() == "file":
            if parts.netloc not in ("", "localhost"):
                raise ConfigurationError(f"file URLs name a local path (file:///path), got {url!r}")
            path = unquote(parts.path)
        else:
            path = without_query(url)
        if not path:
            raise ConfigurationError(f"store URL {url!r} names no directory")
        return cls(path, **query_options(url))

    def describe(self) -> str:
        return f"file:{self.storage_dir}"

    def _runs_inline(self, op: Operation, size: int) -> bool:
        # A handful of syscalls on local files (a stat, one small read, a flock attempt) costs
        # microseconds, less than handing it to a worker thread and back; so do writes when
        # nothing is fsynced. Anything that may fsync, or read many files, runs off the loop.
        if op in _ALWAYS_INLINE:
            return True
        if op in _READS:
            return 0 <= size <= _SMALL_READ
        return not self.durable and op in _WRITES

    # -- sessions -----------------------------------------------------------------------------

    def _create_session(self, session: SessionRecord) -> SessionRecord:
        fd = self._open(session_parts(session.session_id), create=True)
        try:
            for sub in ("agents", "multi_agents"):
                os.close(_fs.open_dir(fd, [sub], create=True, root=self._where(f"session_{session.session_id}")))
            if not self._publish_new(fd, "session.json", session.to_dict()):
                raise ConflictError(f"session {session.session_id!r} already exists in {self.storage_dir}")
            return session
        finally:
            os.close(fd)

    def _read_session(self, session_id: str) -> SessionRecord | None:
        parts = session_parts(session_id)
        try:
            fd = self._open(parts, create=False)
        except FileNotFoundError:
            return None
        where = self._where(*parts, "session.json")
        try:
            data = _fs.read_json(fd, "session.json", where, hard_links=self.allow_hard_links)
        finally:
            os.close(fd)
        if data is None:
            return None
        record = SessionRecord.from_dict(data, where)
        if record.session_id != session_id:
            # A session.json copied from another session would otherwise be listed twice.
            raise CorruptRecordError(f"{where}: holds session_id {record.session_id!r}, expected {session_id!r}")
        return record

    def _all_sessions(self) -> list[SessionRecord]:
        records = []
        with os.scandir(self.storage_dir) as entries:
            for entry in entries:
                if not entry.name.startswith("session_") or not entry.is_dir(follow_symlinks=False):
                    continue
                try:
                    record = self._read_session(entry.name[len("session_") :])
                except Exception as exc:  # an unreadable session must not hide the others
                    logger.warning("path=<%s> | skipped an unreadable session: %s", entry.path, exc)
                    continue
                if record is not None:
                    records.append(record)
        return records

    def _list_sessions(self, cursor: str | None, limit: int) -> SessionPage:
        return page_sessions(self._all_sessions(), cursor=cursor, limit=limit)

    def _delete_session(self, session_id: str) -> bool:
        name = session_parts(session_id)[0]
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
        shutil.rmtree(self.storage_dir / LOCK_DIR / name, ignore_errors=True)
        return True

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

    def _create_agent(self, session_id: str, agent: AgentRecord) -> AgentRecord:
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

    def _read_agent(self, session_id: str, agent_id: str) -> AgentRecord | None:
        parts = agent_parts(session_id, agent_id)
        try:
            fd = self._open(parts, create=False)
        except FileNotFoundError:
            return None
        try:
            data = _fs.read_json(fd, "agent.json", self._where(*parts, "agent.json"), hard_links=self.allow_hard_links)
        finally:
            os.close(fd)
        return None if data is None else AgentRecord.from_dict(data, self._where(*parts, "agent.json"))

    def _update_agent(self, session_id: str, agent: AgentRecord, expected_version: int) -> AgentRecord:
        afd = self._open_agent(session_id, agent.agent_id)
        try:
            lock = self._locked(session_id, f"agent_{agent.agent_id}.record")
            try:
                where = self._where(*agent_parts(session_id, agent.agent_id), "agent.json")
                raw = _fs.read_json(afd, "agent.json", where, hard_links=self.allow_hard_links)
                current = AgentRecord.from_dict(raw, where) if raw is not None else None
                stored_version = current.version if current else 0
                if current is None or stored_version != expected_version:
                    raise version_conflict(
                        f"agent {agent.agent_id!r} in session {session_id!r}", stored_version, expected_version
                    )
                new = agent.successor(expected_version, current.created_at)
                self._publish_replace(afd, "agent.json", new.to_dict())
                return new
            finally:
                self._unlock(lock)
        finally:
            os.close(afd)

    # -- messages -----------------------------------------------------------------------------

    def _append_messages(self, session_id: str, agent_id: str, messages: list[MessageRecord]) -> int:
        mfd = self._open_agent(session_id, agent_id, ["messages"])
        try:
            if not messages:
                return self._head(mfd, None)
            first = messages[0].message_id
            for offset, record in enumerate(messages):
                if record.message_id != first + offset:
                    raise ConflictError(
                        f"appended message ids must be contiguous: {record.message_id} follows {first + offset - 1}",
                        head=self._head(mfd, first),
                    )
            if first < 0 or (first > 0 and not _fs.exists(mfd, message_name(first - 1))):
                head = self._head(mfd, first)
                raise ConflictError(
                    f"message id {first} is not the next free id ({head}) for agent {agent_id!r} "
                    f"in session {session_id!r}",
                    head=head,
                )
            temps: list[_fs.Temp] = []
            try:
                for r in messages:
                    temps.append(_fs.write_new_temp(mfd, encode(r.to_dict()), self.durable))
            except BaseException:
                for temp in temps:
                    _fs.discard(mfd, temp)
                raise
            published = 0
            try:
                for record, temp in zip(messages, temps, strict=False):
                    if not _fs.publish_new(mfd, temp, message_name(record.message_id)):
                        head = self._head(mfd, record.message_id)
                        raise ConflictError(
                            f"message id {record.message_id} was already taken for agent {agent_id!r} "
                            f"in session {session_id!r} (head is {head})",
                            head=head,
                        )
                    published += 1
            finally:
                for temp in temps[published + 1 :]:
                    _fs.discard(mfd, temp)
                if published and self.durable:
                    _fs.fsync_dir(mfd)
            return messages[-1].message_id + 1
        finally:
            os.close(mfd)

    def _head(self, mfd: int, hint: int | None) -> int:
        return find_head(lambda i: _fs.occupied(mfd, message_name(i)), hint)

    def _message_head(self, session_id: str, agent_id: str, hint: int | None) -> int:
        try:
            mfd = self._open([*agent_parts(session_id, agent_id), "messages"], create=False)
        except FileNotFoundError:
            return 0
        try:
            return self._head(mfd, hint)
        finally:
            os.close(mfd)

    def _read_messages(self, session_id: str, agent_id: str, start: int, end: int | None) -> list[MessageRecord]:
        parts = [*agent_parts(session_id, agent_id), "messages"]
        try:
            mfd = self._open(parts, create=False)
        except FileNotFoundError:
            return []
        try:
            start = max(start, 0)
            stop = self._head(mfd, start) if end is None else end
            with collection_paused(stop - start):
                return self._decode_range(mfd, self.storage_dir.joinpath(*parts), start, stop)
        finally:
            os.close(mfd)

    def _decode_range(self, mfd: int, base: Path, start: int, stop: int) -> list[MessageRecord]:
        out = []
        for message_id in range(start, stop):
            name = message_name(message_id)
            raw = _fs.read_bytes(
                mfd,
                name,
                lambda: str(base / name),  # noqa: B023 (used at once)
                hard_links=self.allow_hard_links,
            )
            if raw is None:
                continue
            where = f"{base}/{name}"
            out.append(
                MessageRecord.from_dict(
                    _fs.parse(raw, where), where, expected_id=message_id, has_bytes=BYTES_MARKER_RAW in raw
                )
            )
        return out

    def _update_message(self, session_id: str, agent_id: str, message: MessageRecord) -> None:
        mfd = self._open_agent(session_id, agent_id, ["messages"])
        try:
            name = message_name(message.message_id)
            where = self._where(*agent_parts(session_id, agent_id), "messages", name)
            current = _fs.read_json(mfd, name, where, hard_links=self.allow_hard_links)
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

    def _truncate_messages(self, session_id: str, agent_id: str, new_head: int, expected_head: int) -> None:
        mfd = self._open_agent(session_id, agent_id, ["messages"])
        try:
            head = self._head(mfd, expected_head)
            if head != expected_head:
                raise ConflictError(f"head is {head}, not {expected_head}", head=head)
            for message_id in range(head - 1, max(new_head, 0) - 1, -1):
                _fs._unlink_quietly(mfd, message_name(message_id))
            if self.durable:
                _fs.fsync_dir(mfd)
        finally:
            os.close(mfd)

    # -- multi-agent records ------------------------------------------------------------------

    def _create_multi_agent(self, session_id: str, record: MultiAgentRecord) -> MultiAgentRecord:
        sfd = self._open_session(session_id)
        try:
            fd = _fs.open_dir(
                sfd,
                multi_agent_parts(session_id, record.multi_agent_id)[1:],
                create=True,
                root=self._where(f"session_{session_id}"),
            )
        finally:
            os.close(sfd)
        try:
            stored = record.first()
            if not self._publish_new(fd, "multi_agent.json", stored.to_dict()):
                raise ConflictError(f"multi-agent {record.multi_agent_id!r} already exists", version=1)
            return stored
        finally:
            os.close(fd)

    def _read_multi_agent(self, session_id: str, multi_agent_id: str) -> MultiAgentRecord | None:
        parts = multi_agent_parts(session_id, multi_agent_id)
        try:
            fd = self._open(parts, create=False)
        except FileNotFoundError:
            return None
        try:
            data = _fs.read_json(
                fd, "multi_agent.json", self._where(*parts, "multi_agent.json"), hard_links=self.allow_hard_links
            )
        finally:
            os.close(fd)
        return None if data is None else MultiAgentRecord.from_dict(data, self._where(*parts, "multi_agent.json"))

    def _list_multi_agents(self, session_id: str) -> list[str]:
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

    def _update_multi_agent(self, session_id: str, record: MultiAgentRecord, expected_version: int) -> MultiAgentRecord:
        os.close(self._open_session(session_id))  # raises SessionNotFoundError
        parts = multi_agent_parts(session_id, record.multi_agent_id)
        try:
            fd = self._open(parts, create=False)
        except FileNotFoundError:
            raise ConflictError(f"multi-agent {record.multi_agent_id!r} does not exist", version=0) from None
        try:
            lock = self._locked(session_id, f"multi_agent_{record.multi_agent_id}.record")
            try:
                where = self._where(*parts, "multi_agent.json")
                raw = _fs.read_json(fd, "multi_agent.json", where, hard_links=self.allow_hard_links)
                current = MultiAgentRecord.from_dict(raw, where) if raw is not None else None
                stored_version = current.version if current else 0
                if current is None or stored_version != expected_version:
                    raise version_conflict(f"multi-agent {record.multi_agent_id!r}", stored_version, expected_version)
                new = record.successor(expected_version, current.created_at)
                self._publish_replace(fd, "multi_agent.json", new.to_dict())
                return new
            finally:
                self._unlock(lock)
        finally:
            os.close(fd)

    # -- leases -------------------------------------------------------------------------------

    def _try_lease(self, session_id: str, agent_id: str, ttl: float) -> Lease | None:
        os.close(self._open_session(session_id))  # raises SessionNotFoundError
        fd = self._lock_file(session_id, f"{agent_name(agent_id)}.lease")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return Lease(session_id=session_id, agent_id=agent_id, token=uuid.uuid4().hex, expires_at=None, handle=fd)

    def _renew_lease(self, lease: Lease, ttl: float) -> Lease:
        return lease  # the kernel holds a flock until release or process death: nothing expires

    def _release_lease(self, lease: Lease) -> None:
        fd = lease.handle
        if isinstance(fd, int) and fd >= 0:
            lease.handle = None
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)


def _flag(value: bool | str, name: str) -> bool:
    """A boolean option, also as a URL query string (``true``/``false``, ``1``/``0``, ``yes``/``no``)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", ""):
        return False
    raise ConfigurationError(f"{name} must be true or false, got {value!r}")
