"""Low-level file operations for the file backend: no symlink followed, durable publishes."""

from __future__ import annotations

import errno
import json
import os
import stat
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from mooring._json import loads
from mooring.errors import ConfigurationError, CorruptRecordError, StorageUnavailableError

_CHUNK = 1 << 16
DIR_MODE = 0o700
FILE_MODE = 0o600
_O_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_O_READ = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_O_TEMP = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
# An unnamed temp file (Linux O_TMPFILE) is linked into place through /proc/self/fd: one
# directory change per new record instead of three (create, link, unlink), and a crash
# before the link leaves nothing behind. Where the kernel, the file system or /proc lacks
# it, the first refusal switches this process to named temp files.
_O_UNNAMED = getattr(os, "O_TMPFILE", 0)
_unnamed_ok = bool(_O_UNNAMED) and os.path.isdir("/proc/self/fd")
_NO_UNNAMED = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT}

#: A temp file: the name of one in the directory, or the fd of an unnamed one.
Temp = str | int


class SymlinkRefusedError(ConfigurationError, CorruptRecordError):
    """A path component under the storage directory is a symlink.

    It is a :class:`CorruptRecordError` too: the record it stands for cannot be loaded, and a
    check of the store reports it and goes on with the rest.
    """


TEMP_PREFIX = ".mooring-"


def open_dir(root_fd: int, parts: Sequence[str], *, create: bool, root: str) -> int:
    """Open ``root/parts...`` as a directory fd without following any symlink under root.

    Missing directories are created (mode 0700) when ``create``; otherwise FileNotFoundError.
    """
    fd = os.dup(root_fd)
    try:
        for part in parts:
            try:
                nfd = os.open(part, _O_DIR, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(part, DIR_MODE, dir_fd=fd)
                except FileExistsError:
                    pass
                nfd = os.open(part, _O_DIR, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise SymlinkRefusedError(
                        f"refusing {os.path.join(root, *parts)}: {part!r} is a symlink or not a directory"
                    ) from exc
                raise
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


@contextmanager
def dir_fd(root_fd: int, parts: Sequence[str], *, create: bool, root: str) -> Iterator[int]:
    fd = open_dir(root_fd, parts, create=create, root=root)
    try:
        yield fd
    finally:
        os.close(fd)


def read_bytes(dfd: int, name: str, where: str | Callable[[], str], *, hard_links: bool = False) -> bytes | None:
    """The content of ``name`` in directory ``dfd``, or None if it does not exist.

    Only a regular file with one link is read: a symlink is refused (``O_NOFOLLOW``), and so
    is a file with a second hard link (it may be a file outside the store) unless
    ``hard_links``. The second link of a publish in flight (see :func:`publish_new`) is not one.
    """
    try:
        fd = os.open(name, _O_READ, dir_fd=dfd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SymlinkRefusedError(f"refusing {_where(where)}: it is a symlink") from exc
        raise StorageUnavailableError(f"cannot open {_where(where)}: {exc}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CorruptRecordError(f"refusing {_where(where)}: it is not a regular file")
        if st.st_nlink > 1 and not hard_links and not publishing(dfd, name, st, fd):
            raise CorruptRecordError(
                f"refusing {_where(where)}: it has {st.st_nlink} hard links, so its content may be a file outside "
                "the store (open the store with allow_hard_links=True if the links are yours)"
            )
        first = os.read(fd, _CHUNK)
        if len(first) < _CHUNK:  # a short read of a regular file is its end: one syscall for most records
            return first
        chunks = [first]
        while chunk := os.read(fd, _CHUNK):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def publishing(dfd: int, name: str, st: os.stat_result, fd: int | None = None) -> bool:
    """Whether the second link of ``name`` (``st``, of the open ``fd`` if given) is the temp
    file of a publish in flight.

    :func:`publish_new` links a temp file to the record's name and then removes the temp; in
    between, the record has two links, one a ``.mooring-*.tmp`` name in the same directory.
    Only that exact shape counts (two links, the other a temp beside it), or a second look
    that finds the file down to one link (the publish finished meanwhile); never a timing guess.
    """
    if st.st_nlink != 2:
        return False
    own_temp = name.startswith(TEMP_PREFIX) and name.endswith(".tmp")
    try:
        with os.scandir(dfd) as entries:
            for entry in entries:
                if entry.name == name or entry.inode() != st.st_ino:
                    continue
                # One directory is one device, so the inode number alone names the file.
                if (entry.name.startswith(TEMP_PREFIX) and entry.name.endswith(".tmp")) != own_temp:
                    return True
        again = os.fstat(fd) if fd is not None else os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except OSError:
        return False
    return (again.st_dev, again.st_ino, again.st_nlink) == (st.st_dev, st.st_ino, 1)


def parse(raw: bytes, where: str | Callable[[], str]) -> Any:
    try:
        return loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptRecordError(f"{_where(where)} is corrupt or truncated ({len(raw)} bytes): {exc}") from exc


def read_json(dfd: int, name: str, where: str | Callable[[], str], *, hard_links: bool = False) -> Any | None:
    """Parse ``name`` in directory ``dfd``; None if missing, CorruptRecordError if unreadable."""
    raw = read_bytes(dfd, name, where, hard_links=hard_links)
    return None if raw is None else parse(raw, where)


def _where(where: str | Callable[[], str]) -> str:
    # Paths for error messages are built only when an error happens (restore reads thousands).
    return where if isinstance(where, str) else where()


def exists(dfd: int, name: str) -> bool:
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return stat.S_ISREG(st.st_mode)


def occupied(dfd: int, name: str) -> bool:
    """Whether anything holds ``name`` (a regular file, or a symlink or directory the read of it
    will refuse): an id the head probe must count as taken, since an append there would fail."""
    try:
        os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _write_all(fd: int, payload: bytes, durable: bool) -> None:
    view = memoryview(payload)
    while view:
        written = os.write(fd, view)
        view = view[written:]
    if durable:
        os.fsync(fd)


def write_new_temp(dfd: int, payload: bytes, durable: bool) -> Temp:
    """Write ``payload`` to a temp file for :func:`publish_new`: unnamed where the platform
    has them (its fd), else named (see :func:`write_temp`)."""
    global _unnamed_ok
    if _unnamed_ok:
        try:
            fd = os.open(".", os.O_WRONLY | _O_UNNAMED | getattr(os, "O_CLOEXEC", 0), FILE_MODE, dir_fd=dfd)
        except OSError as exc:
            if exc.errno not in _NO_UNNAMED:
                raise
            _unnamed_ok = False
        else:
            try:
                _write_all(fd, payload, durable)
            except BaseException:
                os.close(fd)
                raise
            return fd
    return write_temp(dfd, payload, durable)


def write_temp(dfd: int, payload: bytes, durable: bool) -> str:
    """Write ``payload`` to a fresh uniquely named temp file in ``dfd``; returns its name."""
    name = f"{TEMP_PREFIX}{uuid.uuid4().hex}.tmp"
    fd = os.open(name, _O_TEMP, FILE_MODE, dir_fd=dfd)
    try:
        _write_all(fd, payload, durable)
    except BaseException:
        os.close(fd)
        _unlink_quietly(dfd, name)
        raise
    os.close(fd)
    return name


def discard(dfd: int, temp: Temp) -> None:
    """Drop a temp file that will not be published."""
    if isinstance(temp, int):
        os.close(temp)
    else:
        _unlink_quietly(dfd, temp)


def publish_new(dfd: int, temp: Temp, name: str) -> bool:
    """Link ``temp`` to ``name`` only if ``name`` is free; False if it was taken. Removes ``temp``."""
    try:
        if isinstance(temp, int):
            os.link(f"/proc/self/fd/{temp}", name, dst_dir_fd=dfd, follow_symlinks=True)
        else:
            os.link(temp, name, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
        return True
    except FileExistsError:
        return False
    finally:
        discard(dfd, temp)


def publish_replace(dfd: int, temp: str, name: str) -> None:
    try:
        os.rename(temp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except BaseException:
        _unlink_quietly(dfd, temp)
        raise


def fsync_dir(dfd: int) -> None:
    os.fsync(dfd)


def _unlink_quietly(dfd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dfd)
    except FileNotFoundError:
        pass
