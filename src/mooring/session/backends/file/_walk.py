"""Looking at a file store's tree without following a symlink, and moving entries inside it.

Every directory is opened from a descriptor of ``storage_dir`` one component at a time with
``O_NOFOLLOW`` (:func:`mooring.session.backends.file._fs.open_dir`), and every entry is looked
at with ``lstat``; so a symlink anywhere under the store is seen as what it is, never as what
it points to, and nothing is ever created or moved outside the store.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from mooring.session.backends.file import _fs


@contextmanager
def root_fd(root: Path) -> Iterator[int]:
    """A descriptor of ``storage_dir`` itself (which may be a symlink: the caller chose it)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


def entries(root: Path, parts: Sequence[str]) -> list[tuple[str, os.stat_result]]:
    """(name, lstat) of each entry of ``root/parts``, sorted; nothing when the directory is
    missing or a component of it is a symlink or not a directory."""
    try:
        with root_fd(root) as rfd, _fs.dir_fd(rfd, parts, create=False, root=str(root)) as dfd:
            return listing(dfd)
    except (FileNotFoundError, NotADirectoryError, _fs.SymlinkRefusedError):
        return []


def listing(dfd: int) -> list[tuple[str, os.stat_result]]:
    found = []
    with os.scandir(dfd) as scan:
        for entry in scan:
            try:
                found.append((entry.name, entry.stat(follow_symlinks=False)))
            except FileNotFoundError:
                continue  # removed meanwhile (a temp file of a finished write)
    return sorted(found, key=lambda item: item[0])


def walk(root: Path, parts: Sequence[str]) -> Iterator[tuple[list[str], str, os.stat_result, int]]:
    """(directory parts, name, lstat, directory fd) of every entry under ``root/parts``, depth
    first, descending only into real directories. The fd is valid during the step only."""
    try:
        with root_fd(root) as rfd, _fs.dir_fd(rfd, parts, create=False, root=str(root)) as dfd:
            yield from _walk(dfd, list(parts), str(root))
    except (FileNotFoundError, NotADirectoryError, _fs.SymlinkRefusedError):
        return


def _walk(dfd: int, parts: list[str], root: str) -> Iterator[tuple[list[str], str, os.stat_result, int]]:
    for name, st in listing(dfd):
        yield parts, name, st, dfd
        if stat.S_ISDIR(st.st_mode):
            try:
                with _fs.dir_fd(dfd, [name], create=False, root=root) as sub:
                    yield from _walk(sub, [*parts, name], root)
            except (FileNotFoundError, NotADirectoryError, _fs.SymlinkRefusedError):
                continue  # replaced meanwhile; the next verify looks again


def is_symlink(root: Path, parts: Sequence[str]) -> bool:
    """Whether the entry ``root/parts`` is itself a symlink (its parents are opened safely)."""
    try:
        with root_fd(root) as rfd, _fs.dir_fd(rfd, parts[:-1], create=False, root=str(root)) as dfd:
            return stat.S_ISLNK(os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False).st_mode)
    except (FileNotFoundError, NotADirectoryError, _fs.SymlinkRefusedError):
        return False


def free_name(dfd: int, name: str) -> str:
    """``name``, or ``name.1``, ``name.2``... : the first that is not taken in ``dfd``."""
    candidate, suffix = name, 1
    while True:
        try:
            os.stat(candidate, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return candidate
        candidate = f"{name}.{suffix}"
        suffix += 1


def keep_copy(src_fd: int, name: str, dst_fd: int, target: str) -> str | None:
    """Give the entry ``name`` of ``src_fd`` a second name in ``dst_fd`` (a hard link of the
    entry itself, never of what a symlink points to). Returns the name used, or None where the
    file system has no hard links (the caller then moves the entry instead)."""
    while True:
        free = free_name(dst_fd, target)
        try:
            os.link(name, free, src_dir_fd=src_fd, dst_dir_fd=dst_fd, follow_symlinks=False)
            return free
        except FileExistsError:
            continue  # taken between the look and the link: try the next name
        except OSError as exc:
            if exc.errno in (errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
                return None
            raise
