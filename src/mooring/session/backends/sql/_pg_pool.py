"""The connection pool of one PostgreSQL repository: opened on first use (or the caller's),
the schema migrated on first use, driver errors mapped to mooring's with their cause.

:class:`~mooring.session.backends.sql.postgres.PostgresSessionRepository` holds one
:class:`PostgresConnections` and borrows a connection from it for each operation.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from mooring.errors import ConfigurationError, MooringError, StorageUnavailableError
from mooring.session.backends.sql.migrations import migrate_postgres

logger = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]


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
        self._min_size = min_size
        self._max_size = max_size
        self._describe = describe
        self._pool = pool
        self._owns_pool = pool is None
        self._lock = threading.Lock()
        self._migrated = False

    @property
    def describe(self) -> str:
        return self._describe()

    def _get_pool(self) -> ConnectionPool[Any]:
        with self._lock:
            if self._pool is None:
                kwargs: dict[str, Any] = {"autocommit": True, "prepare_threshold": None}
                if "application_name" not in self.params:
                    kwargs["application_name"] = "mooring"
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
                self._pool = pool
            return self._pool

    def _diagnose(self) -> BaseException | None:
        """Why the pool has no connection: try one connection directly for the real error."""
        if self.conninfo is None:
            return None
        try:
            psycopg.connect(
                self.conninfo, connect_timeout=max(2, min(10, round(self.timeout))), prepare_threshold=None
            ).close()
        except psycopg.Error as exc:
            return exc
        return None

    @contextmanager
    def connection(self) -> Iterator[Conn]:
        try:
            pool = self._get_pool()
            if not self._migrated:
                with pool.connection(timeout=self.timeout) as conn, conn.transaction():
                    applied = migrate_postgres(conn, self.schema, self.describe)
                if applied:
                    logger.debug("schema=<%s> | applied migrations %s", self.schema, applied)
                self._migrated = True
            with pool.connection(timeout=self.timeout) as conn:
                yield conn
        except MooringError:
            raise
        except PoolTimeout as exc:
            cause = self._diagnose() or exc
            raise StorageUnavailableError(
                f"{self.describe}: no connection within {self.timeout:g}s: {cause}"
            ) from cause
        except psycopg.Error as exc:
            raise StorageUnavailableError(f"{self.describe} failed: {exc}") from exc

    def close(self) -> None:
        """Close the pool these connections opened (a caller's pool is left alone)."""
        with self._lock:
            pool = self._pool if self._owns_pool else None
            if self._owns_pool:
                self._pool = None
        if pool is not None:
            pool.close()
