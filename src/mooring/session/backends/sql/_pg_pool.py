"""The connection pool of one PostgreSQL repository: opened on first use (or the caller's),
the schema migrated on first use, driver errors mapped to mooring's with their cause.

:class:`~mooring.session.backends.sql.postgres.PostgresSessionRepository` holds one
:class:`PostgresConnections` and borrows a connection from it for each operation.

Outages: a server that cannot be reached is reported within about ``connect_timeout``
seconds, not after the pool's whole wait. A checkout first waits on the pool for at most
``connect_timeout``; if no connection came, one direct connection (bounded by
``connect_timeout`` too) tells a busy pool from a down server. After a failure the
repository is *suspect*: each operation probes the server directly first, so a server that
is still down fails the operation at once, and the first operation that finds it back
replaces the pool (whose own reconnection may be sleeping in a long back-off) with a fresh
one, so the first turn after a restart succeeds. Pooled connections are checked on
checkout, so connections that died with the server are never handed out. Nothing is
retried after a statement was sent: a write whose outcome is unknown is reported as such.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from mooring.errors import ConfigurationError, MooringError, StorageUnavailableError
from mooring.session.backends.sql.migrations import migrate_postgres

logger = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]

DEFAULT_CONNECT_TIMEOUT = 5.0


def check_connect_timeout(value: Any, where: str = "connect_timeout") -> float:
    """``value`` as a positive finite number of seconds, or ``ConfigurationError`` naming it."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigurationError(f"{where} must be a positive number of seconds, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{where} must be a positive number of seconds, got {value!r}")
    return float(value)


class _OwnedPools:
    """The pools a repository opened; closed by :meth:`close`, by the finalizer of a
    repository that was never closed, or at interpreter exit (while threads can still be
    joined, which ``ConnectionPool.__del__`` at shutdown cannot)."""

    def __init__(self) -> None:
        self.pools: list[ConnectionPool[Any]] = []
        self._lock = threading.Lock()

    def add(self, pool: ConnectionPool[Any]) -> None:
        with self._lock:
            self.pools.append(pool)

    def close(self, pool: ConnectionPool[Any] | None = None, timeout: float = 5.0) -> None:
        with self._lock:
            if pool is None:
                closing, self.pools = self.pools, []
            else:
                closing = [pool] if pool in self.pools else []
                self.pools = [p for p in self.pools if p is not pool]
        for each in closing:
            try:
                each.close(timeout=timeout)
            except Exception:  # pragma: no cover - closing is best effort
                logger.debug("pool=<%s> | error while closing", each.name, exc_info=True)


class PostgresConnections:
    """Connections for one repository: from its own pool (built from ``conninfo``) or the caller's."""

    def __init__(
        self,
        conninfo: str | None,
        pool: ConnectionPool[Any] | None,
        *,
        schema: str,
        min_size: int,
        max_size: int,
        timeout: float,
        connect_timeout: float,
        describe: Callable[[], str],
    ) -> None:
        self.conninfo = conninfo
        self.params: dict[str, Any] = {}
        if conninfo is not None:
            try:
                self.params = dict(conninfo_to_dict(conninfo))
            except psycopg.Error as exc:
                raise ConfigurationError(f"invalid PostgreSQL connection string: {exc}") from exc
        self.schema = schema
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._min_size = min_size
        self._max_size = max_size
        self._describe = describe
        self._pool = pool
        self._owns_pool = pool is None
        self._owned = _OwnedPools()
        self._finalizer = weakref.finalize(self, self._owned.close)
        self._lock = threading.Lock()
        self._migrated = False
        self._suspect = False

    @property
    def describe(self) -> str:
        return self._describe()

    def _libpq_connect_timeout(self) -> int:
        # libpq takes whole seconds and treats anything below 2 as 2.
        return max(2, math.ceil(self.connect_timeout))

    def _new_pool(self) -> ConnectionPool[Any]:
        kwargs: dict[str, Any] = {"autocommit": True, "prepare_threshold": None}
        if "application_name" not in self.params:
            kwargs["application_name"] = "mooring"
        if "connect_timeout" not in self.params:
            kwargs["connect_timeout"] = self._libpq_connect_timeout()
        pool: ConnectionPool[Any] = ConnectionPool(
            self.conninfo or "",
            kwargs=kwargs,
            min_size=self._min_size,
            max_size=self._max_size,
            open=False,
            # Pooled connections may have died with the server (or an admin's
            # pg_terminate_backend): test each one before handing it out.
            check=ConnectionPool.check_connection,
            timeout=self.timeout,
            name=f"mooring-{self.schema}",
        )
        pool.open(wait=False)
        self._owned.add(pool)
        return pool

    def _get_pool(self) -> ConnectionPool[Any]:
        with self._lock:
            if self._pool is None:
                self._pool = self._new_pool()
            return self._pool

    def _renew_pool(self, old: ConnectionPool[Any]) -> None:
        """Replace our pool ``old`` with a fresh one (its reconnection may be in a long back-off)."""
        if not self._owns_pool:
            return
        with self._lock:
            if self._pool is not old:
                return  # another thread renewed it already
            self._pool = self._new_pool()
        logger.debug("schema=<%s> | the server is back: opened a fresh connection pool", self.schema)
        # Clients still waiting on the old pool get PoolClosed and move to the new one.
        threading.Thread(target=self._owned.close, args=(old,), name=f"{old.name}-close", daemon=True).start()

    def _probe(self) -> BaseException | None:
        """Connect once directly (bounded by ``connect_timeout``): None if the server answers,
        else the driver's error, which says why."""
        if self.conninfo is None:
            return None
        try:
            psycopg.connect(
                self.conninfo, connect_timeout=self._libpq_connect_timeout(), prepare_threshold=None
            ).close()
        except psycopg.Error as exc:
            return exc
        return None

    def _unavailable(self, cause: BaseException) -> StorageUnavailableError:
        self._suspect = True
        return StorageUnavailableError(f"{self.describe}: the server cannot be reached: {cause}")

    def _checkout(self, pool: ConnectionPool[Any]) -> Conn:
        """A checked connection from ``pool``: wait at most ``connect_timeout`` first, then tell
        a busy pool (keep waiting, up to ``timeout`` in all) from a down server (raise)."""
        started = time.monotonic()
        try:
            conn: Conn = pool.getconn(timeout=min(self.connect_timeout, self.timeout))
            return conn
        except PoolTimeout as exc:
            cause = self._probe()
            if cause is not None:
                raise self._unavailable(cause) from cause
            remaining = self.timeout - (time.monotonic() - started)
            if remaining <= 0:
                raise StorageUnavailableError(
                    f"{self.describe}: no connection within {self.timeout:g}s (all in use)"
                ) from exc
        try:
            late: Conn = pool.getconn(timeout=remaining)
            return late
        except PoolTimeout as exc:
            raise StorageUnavailableError(
                f"{self.describe}: no connection within {self.timeout:g}s (all {self._max_size} in use?)"
            ) from exc

    @contextmanager
    def _borrow(self) -> Iterator[Conn]:
        for attempt in (1, 2):
            pool = self._get_pool()
            if self._suspect:
                cause = self._probe()
                if cause is not None:
                    raise self._unavailable(cause) from cause
                self._suspect = False
                self._renew_pool(pool)
                pool = self._get_pool()
            try:
                conn = self._checkout(pool)
            except PoolClosed:
                if attempt == 2 or not self._owns_pool:
                    raise
                continue  # the pool was renewed while we waited: take one from the new pool
            break
        try:
            with conn:  # as the pool's own connection(): commit, or roll back on an error
                yield conn
        finally:
            pool.putconn(conn)

    @contextmanager
    def connection(self) -> Iterator[Conn]:
        try:
            if not self._migrated:
                with self._borrow() as conn, conn.transaction():
                    applied = migrate_postgres(conn, self.schema, self.describe)
                if applied:
                    logger.debug("schema=<%s> | applied migrations %s", self.schema, applied)
                self._migrated = True
            with self._borrow() as conn:
                yield conn
        except MooringError:
            raise
        except psycopg.OperationalError as exc:
            # The connection broke (server gone, connection terminated): probe before the next use.
            self._suspect = True
            raise StorageUnavailableError(f"{self.describe} failed: {exc}") from exc
        except psycopg.Error as exc:
            raise StorageUnavailableError(f"{self.describe} failed: {exc}") from exc

    def close(self) -> None:
        """Close the pools these connections opened (a caller's pool is left alone)."""
        with self._lock:
            if self._owns_pool:
                self._pool = None
        self._owned.close()
