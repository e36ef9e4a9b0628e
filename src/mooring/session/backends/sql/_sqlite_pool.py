"""Connections to one SQLite database file: opened read-write (WAL) or read-only, pooled,
migrated on first use, with driver errors mapped to mooring's.

:class:`~mooring.session.backends.sql.sqlite.SQLiteSessionRepository` holds one
:class:`SQLiteConnections` and borrows a connection from it for each operation.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Literal

from mooring.errors import MooringError, ReadOnlyStoreError, StorageUnavailableError
from mooring.session.backends.sql.migrations import _sqlite_state, check_version, migrate_sqlite, pending

logger = logging.getLogger(__name__)

Durability = Literal["fsync", "none"]

_MAX_IDLE_CONNECTIONS = 8
# What a read-write open meets on read-only media or without write permission.
_READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
# SQLite's primary result codes (a stable C API; not every Python exposes them as constants).
_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_CANTOPEN = 3, 8, 14
_READ_ONLY_SQLITE = frozenset({_SQLITE_READONLY, _SQLITE_CANTOPEN, _SQLITE_PERM})


class _Connection(sqlite3.Connection):
    # An immutable=1 connection never sees later changes, so it is never pooled.
    immutable = False


# SQLite's standard message for each primary result code mooring acts on (sqlite3_errstr), for
# Python 3.10, whose driver errors carry no code.
_CODE_OF_MESSAGE = {
    "database is locked": 5,
    "database table is locked": 6,
    "attempt to write a readonly database": 8,
    "disk i/o error": 10,
    "database disk image is malformed": 11,
    "unable to open database file": 14,
}


def _sqlite_code(exc: sqlite3.Error) -> int:
    """The primary result code of a driver error (extended codes keep it in the low byte)."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return int(code) & 0xFF
    text = str(exc).lower()
    return next((value for message, value in _CODE_OF_MESSAGE.items() if text.startswith(message)), 0)


_SQLITE_IOERR_DELETE_NOENT = 10 | (23 << 8)  # SQLite's extended result code (stable C API)


def _wal_switch_race(exc: sqlite3.OperationalError) -> bool:
    """A failure of ``PRAGMA journal_mode = WAL`` caused by another connection switching too."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code == _SQLITE_IOERR_DELETE_NOENT or _sqlite_code(exc) in (5, 6)  # + SQLITE_BUSY, SQLITE_LOCKED
    return "locked" in str(exc) or "disk I/O error" in str(exc)


class SQLiteConnections:
    """The connection pool of one database file (connections never cross a fork)."""

    def __init__(self, path: Path, *, busy_timeout: float, durability: Durability, read_only: bool) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.durability: Durability = durability
        self.describe = f"sqlite:{path}"
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._migrated = False
        #: Why the database is read-only (None: it is written normally); set by ``read_only``
        #: or on the first open that finds the file not writable, and kept from then on.
        self.read_only_reason: str | None = "opened read-only" if read_only else None

    def _connect(self) -> sqlite3.Connection:
        if self.read_only_reason is not None:
            return self._connect_read_only()
        try:
            return self._connect_read_write()
        except (OSError, sqlite3.Error) as exc:
            unwritable = (
                exc.errno in _READ_ONLY_ERRNOS if isinstance(exc, OSError) else _sqlite_code(exc) in _READ_ONLY_SQLITE
            )
            if not (unwritable and self.path.is_file()):
                raise
            # The database exists but this process cannot write it (or cannot create its
            # -wal/-shm files): serve reads, refuse writes, and stop trying to write.
            self.read_only_reason = f"not writable here: {exc}"
            logger.info("path=<%s> | opening read-only, %s", self.path, self.read_only_reason)
            return self._connect_read_only()

    def _connect_read_write(self) -> sqlite3.Connection:
        if not self.path.parent.is_dir():
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Create the file private (0600) before SQLite does; its -wal/-shm files copy the mode.
        # Only when it is missing: closing any other fd of an open database file drops every
        # POSIX lock SQLite holds on it in this process (O_EXCL opens nothing otherwise).
        if not self.path.exists():
            with self._lock:
                try:
                    os.close(
                        os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
                    )
                except FileExistsError:
                    pass
        elif not os.access(self.path, os.W_OK):
            # Probed without an fd (see above); SQLite would open it read-only and create its
            # -wal/-shm files beside it. The caller serves it read-only instead.
            raise PermissionError(errno.EACCES, "the database file is not writable", str(self.path))
        # check_same_thread=False: a pooled connection moves between worker threads, but only
        # one thread uses it at a time. isolation_level=None: transactions are explicit.
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False, factory=_Connection
        )
        try:
            mode = self._enable_wal(conn)
            if mode is None or str(mode[0]).lower() != "wal":
                # Some file systems (network mounts) cannot share WAL memory: still correct, slower.
                logger.warning("path=<%s> | WAL mode unavailable, using journal_mode=%s", self.path, mode)
            conn.execute(f"PRAGMA synchronous = {'FULL' if self.durability == 'fsync' else 'NORMAL'}")
            conn.execute("PRAGMA mmap_size = 268435456")
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect_read_only(self) -> sqlite3.Connection:
        """A read-only connection that creates nothing beside the database when it can.

        ``mode=ro`` takes SQLite's locks and reads the -wal file, so it sees every committed
        transaction and is safe beside a live writer; but on a WAL database it needs the -shm
        file, which it creates (and leaves behind) when missing, and it cannot open at all
        where that file cannot be created (read-only media). ``immutable=1`` reads the main
        file alone, without locks or side files, which is right only if nothing can change
        it and no -wal holds transactions not yet copied into it. So: a non-empty -wal means
        ``mode=ro`` (the only way to read those transactions; SQLite >= 3.22 reads existing
        read-only -wal/-shm files). Otherwise ``immutable=1`` when this process cannot write
        the file or ``mode=ro`` cannot open it: no WAL writer is connected (it would have a
        -wal), and none can write through this path. Else ``mode=ro``.
        """
        if not self.path.is_file():
            raise StorageUnavailableError(f"sqlite database {self.path} does not exist (opened read-only)")
        wal = self.path.with_name(self.path.name + "-wal")
        wal_has_data = wal.exists() and wal.stat().st_size > 0
        if not wal_has_data and not os.access(self.path, os.W_OK):
            return self._open_uri("immutable=1")
        try:
            return self._open_uri("mode=ro")
        except sqlite3.OperationalError as exc:
            if wal_has_data or _sqlite_code(exc) != _SQLITE_CANTOPEN:
                raise
        return self._open_uri("immutable=1")

    def _open_uri(self, option: str) -> sqlite3.Connection:
        uri = f"{self.path.resolve().as_uri()}?{option}"
        conn = sqlite3.connect(
            uri, uri=True, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False, factory=_Connection
        )
        try:
            # SQLite opens lazily: read the schema now so an open that cannot work fails here.
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except BaseException:
            conn.close()
            raise
        conn.immutable = option == "immutable=1"
        return conn

    def _check_schema_read_only(self, conn: sqlite3.Connection) -> None:
        state = _sqlite_state(conn)
        if state is not None:
            check_version(state[1], self.describe)
        if state is None or pending(state[0]):
            raise ReadOnlyStoreError(
                f"sqlite database {self.path} is read-only ({self.read_only_reason}) and its schema is missing "
                "or older than this mooring's; open it writable once to migrate it"
            )

    def _enable_wal(self, conn: sqlite3.Connection) -> Any:
        # Switching a new database to WAL takes an exclusive lock, and SQLite can answer
        # "database is locked" at once (without its busy handler) when several processes open
        # the file together; retry until busy_timeout like any other wait for the lock. The
        # switch also deletes the rollback journal, which a racing connection may have deleted
        # first (SQLITE_IOERR_DELETE_NOENT): the same race, retried the same way.
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.005
        while True:
            try:
                return conn.execute("PRAGMA journal_mode = WAL").fetchone()
            except sqlite3.OperationalError as exc:
                if not _wal_switch_race(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _checkout(self) -> sqlite3.Connection:
        with self._lock:
            if self._pid != os.getpid():
                # Never use a connection inherited across fork(); let the child open its own.
                self._idle, self._pid, self._migrated = [], os.getpid(), False
            if self._idle:
                return self._idle.pop()
        return self._connect()

    def _checkin(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            poolable = not getattr(conn, "immutable", False)
            if poolable and self._pid == os.getpid() and len(self._idle) < _MAX_IDLE_CONNECTIONS:
                self._idle.append(conn)
                return
        conn.close()

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        conn: sqlite3.Connection | None = None
        try:
            conn = self._checkout()
            if not self._migrated:
                if self.read_only_reason is not None:
                    self._check_schema_read_only(conn)
                else:
                    applied = migrate_sqlite(conn, self.describe)
                    if applied:
                        logger.debug("path=<%s> | applied migrations %s", self.path, applied)
                self._migrated = True
            yield conn
        except MooringError:
            self._finish(conn, healthy=True)
            raise
        except sqlite3.Error as exc:
            self._finish(conn, healthy=False)
            if _sqlite_code(exc) == _SQLITE_READONLY:
                raise self.refusal() from exc
            raise StorageUnavailableError(f"sqlite database {self.path} failed: {exc}") from exc
        except OSError as exc:
            self._finish(conn, healthy=False)
            raise StorageUnavailableError(f"sqlite database {self.path} failed: {exc}") from exc
        except BaseException:
            self._finish(conn, healthy=False)
            raise
        self._finish(conn, healthy=True)

    def _finish(self, conn: sqlite3.Connection | None, *, healthy: bool) -> None:
        if conn is None:
            return
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            healthy = False
        if healthy:
            self._checkin(conn)
        else:
            conn.close()

    def refusal(self) -> ReadOnlyStoreError:
        reason = self.read_only_reason or "the database refused the write"
        return ReadOnlyStoreError(f"sqlite database {self.path} is read-only ({reason}); writes are refused")

    def warm(self) -> bool:
        """True when a call would find an idle connection of this process, schema checked."""
        return self._migrated and bool(self._idle) and self._pid == os.getpid()

    @contextmanager
    def write(self, conn: sqlite3.Connection, *, synced: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction; IMMEDIATE takes the write lock up front, so the checks made
        inside it still hold at COMMIT (and the busy timeout applies to the wait).

        ``synced=False`` commits without syncing the WAL (see :meth:`unsynced`)."""
        if self.read_only_reason is not None:
            # Refuse before reading anything: a lease attempt would otherwise wait on a held
            # lease before its write failed.
            raise self.refusal()
        with self.unsynced(conn) if not synced else nullcontext(conn):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def unsynced(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """Commits made inside skip the WAL sync (``synchronous=NORMAL``), for rows that need
        no power-loss durability of their own: lease rows. In WAL mode the log is written in
        order, so the next synced commit (the turn's messages) makes them durable too; a lease
        row lost to a power cut is a lease that was free or expires by itself. If switching
        back fails, the error closes the connection (``connection()`` drops it), so no pooled
        connection is left unsynced."""
        if self.durability != "fsync":
            yield conn
            return
        conn.execute("PRAGMA synchronous = NORMAL")
        try:
            yield conn
        finally:
            conn.execute("PRAGMA synchronous = FULL")

    def close(self) -> None:
        """Close pooled connections; later calls open new ones."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
