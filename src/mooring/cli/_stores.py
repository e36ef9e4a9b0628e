"""Which stores a command may create, and who holds a busy session's lease.

Opening a file store creates its directory and the first write to an SQLite store creates
the database, which is right for commands that write (``chat``, ``sessions import``, the
destination of ``sessions copy``) and wrong for the ones that only read: a typo in
``--store`` would otherwise print "no sessions" and leave an empty store behind.
:func:`require_existing` checks a local store before it is opened; a server store (PostgreSQL,
Redis, S3, a plug-in scheme) is left to its server.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mooring.errors import MooringError
from mooring.session._layout import agent_name, session_parts
from mooring.session.repository import SessionRepository
from mooring.session.url import scheme_of, without_query


class StoreNotFoundError(MooringError, LookupError):
    """A command that only reads was pointed at a local store that does not exist."""


def local_store_path(url: str) -> tuple[str, Path] | None:
    """``("file" | "sqlite", path)`` for a store URL naming a local path; None otherwise."""
    scheme = scheme_of(url)
    if scheme == "file":
        parts = urlsplit(url)
        raw = unquote(parts.path) if parts.scheme.lower() == "file" else without_query(url)
        return ("file", Path(raw).expanduser()) if raw else None
    if scheme == "sqlite":
        from mooring.session.backends.sql.sqlite import SQLiteSessionRepository

        return "sqlite", SQLiteSessionRepository.from_url(url).path  # parsing opens nothing
    return None


def require_existing(url: str) -> None:
    """Raise :class:`StoreNotFoundError` naming the path when a local store does not exist."""
    local = local_store_path(url)
    if local is None:
        return
    kind, path = local
    shown = path if path.is_absolute() else f"{path} (= {Path.cwd() / path})"
    if kind == "file" and not path.is_dir():
        what = "is not a directory" if path.exists() else "does not exist"
        raise StoreNotFoundError(f"session store {shown} {what} (check the store URL; nothing was created)")
    if kind == "sqlite" and not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise StoreNotFoundError(f"sqlite database {shown} {what} (check the store URL; nothing was created)")


# -- lease holders ----------------------------------------------------------------------------


def lease_holder(repository: SessionRepository, session_id: str, agent_id: str) -> str | None:
    """A short description of the process holding the (session, agent) lease, when the store
    can tell (``pid 123 on host: python worker.py``); None when it cannot."""
    try:
        from mooring.session.backends.file import FileSessionRepository
        from mooring.session.backends.sql.sqlite import SQLiteSessionRepository

        if isinstance(repository, FileSessionRepository):
            lock = repository.storage_dir / ".mooring-locks" / Path(*session_parts(session_id))
            pid = _flock_holder(lock / f"{agent_name(agent_id)}.lease")
            return _describe_pid(pid, None) if pid is not None else None
        if isinstance(repository, SQLiteSessionRepository):
            return _sqlite_holder(repository.path, session_id, agent_id)
    except (OSError, sqlite3.Error, MooringError, ValueError):
        return None
    return None


def _flock_holder(path: Path) -> int | None:
    """The pid holding a ``flock`` on ``path``, from ``/proc/locks`` (Linux); None elsewhere."""
    inode = os.stat(path).st_ino
    with open("/proc/locks", encoding="ascii", errors="replace") as locks:
        for line in locks:
            fields = line.split()
            if len(fields) < 6 or fields[1] != "FLOCK" or "->" in fields:
                continue  # "->" marks a waiter, not the holder
            where = fields[5].split(":")
            if len(where) == 3 and where[2].isdigit() and int(where[2]) == inode and fields[4].isdigit():
                return int(fields[4])
    return None


def _sqlite_holder(path: Path, session_id: str, agent_id: str) -> str | None:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=1.0)
    try:
        row = conn.execute(
            "SELECT token FROM mooring_leases WHERE session_id = ? AND agent_id = ?", (session_id, agent_id)
        ).fetchone()
    finally:
        conn.close()
    if row is None:
        return None
    host, _, rest = str(row[0]).partition(":")
    pid = rest.partition(":")[0]
    return _describe_pid(int(pid), host) if pid.isdigit() else None


def _describe_pid(pid: int, host: str | None) -> str:
    import socket

    text = f"pid {pid}" + (f" on {host}" if host else "")
    if host in (None, socket.gethostname()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                command = " ".join(handle.read().replace(b"\0", b" ").decode(errors="replace").split())
        except OSError:
            command = ""
        if command:
            text += f": {command if len(command) <= 80 else command[:79] + '…'}"
    return text
