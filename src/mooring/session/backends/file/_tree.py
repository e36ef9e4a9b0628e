"""The file backend's plumbing: safe directory walks, kept directory fds, publishes, lock files."""

from __future__ import annotations

import fcntl
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from typing_extensions import ParamSpec

from mooring._ids import validate_id
from mooring.errors import SessionNotFoundError, StorageUnavailableError
from mooring.session._layout import agent_parts, encode, session_parts
from mooring.session.backends.file import _fs

P = ParamSpec("P")
T = TypeVar("T")

# Lock files live outside the session tree, so the tree stays exactly the Strands layout.
LOCK_DIR = ".mooring-locks"
_KEPT_DIRS = 256  # directory fds kept open per repository (see _open)


def _close_kept(dirs: OrderedDict[tuple[str, ...], int], lock: threading.Lock) -> None:
    with lock:
        while dirs:
            os.close(dirs.popitem()[1])


class FileTree:
    """Directory access under ``storage_dir`` for :class:`FileSessionRepository`."""

    def __init__(self, storage_dir: Path, durable: bool, *, allow_hard_links: bool = False) -> None:
        self.storage_dir = storage_dir
        self.durable = durable
        self.allow_hard_links = allow_hard_links
        self._dirs: OrderedDict[tuple[str, ...], int] = OrderedDict()
        self._dirs_lock = threading.Lock()
        # An Agent dropped without close() must not leave its kept fds open until exit.
        self._release = weakref.finalize(self, _close_kept, self._dirs, self._dirs_lock)
        try:
            self.storage_dir.mkdir(mode=_fs.DIR_MODE, parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailableError(f"cannot create storage directory {self.storage_dir}: {exc}") from exc

    def _guard(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return func(*args, **kwargs)
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
        _close_kept(self._dirs, self._dirs_lock)

    def _where(self, *parts: str) -> str:
        return str(self.storage_dir.joinpath(*parts))

    def _open_session(self, session_id: str) -> int:
        parts = session_parts(session_id)
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
            return self._open([*agent_parts(session_id, agent_id), *sub], create=False)
        except FileNotFoundError:
            pass  # find out what is missing, and create ``sub``
        sfd = self._open_session(session_id)
        try:
            afd = _fs.open_dir(
                sfd,
                ["agents", f"agent_{validate_id(agent_id, 'agent_id')}"],
                create=False,
                root=self._where(*session_parts(session_id)),
            )
        except FileNotFoundError:
            raise SessionNotFoundError(f"agent {agent_id!r} does not exist in session {session_id!r}") from None
        finally:
            os.close(sfd)
        if not sub:
            return afd
        try:
            return _fs.open_dir(afd, sub, create=True, root=self._where(*agent_parts(session_id, agent_id)))
        finally:
            os.close(afd)

    def _publish_new(self, dfd: int, name: str, data: dict[str, Any]) -> bool:
        temp = _fs.write_new_temp(dfd, encode(data), self.durable)
        taken = not _fs.publish_new(dfd, temp, name)
        if not taken and self.durable:
            _fs.fsync_dir(dfd)
        return not taken

    def _publish_replace(self, dfd: int, name: str, data: dict[str, Any]) -> None:
        temp = _fs.write_temp(dfd, encode(data), self.durable)
        _fs.publish_replace(dfd, temp, name)
        if self.durable:
            _fs.fsync_dir(dfd)

    def _lock_file(self, session_id: str, name: str) -> int:
        """Open (creating) the lock file ``name`` of a session. Lock files are never removed
        while the session exists: unlinking a held flock file would let two holders in."""
        lfd = self._open([LOCK_DIR, *session_parts(session_id)], create=True)
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
