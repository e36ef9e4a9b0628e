"""What the Redis repository's operations share: the client's error mapping, key helpers,
script calls, and the JSON helpers (kept apart to hold ``redis.py`` near one noun per screen)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from typing_extensions import ParamSpec

from mooring._json import loads
from mooring.errors import CorruptRecordError, SessionNotFoundError, StorageUnavailableError, missing_extra
from mooring.session.backends.redis._connect import DEFAULT_URL
from mooring.session.backends.redis._scripts import SessionKeys

try:
    import redis
    from redis.exceptions import RedisClusterException
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise missing_extra("redis", "redis-py") from exc

P = ParamSpec("P")
T = TypeVar("T")


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, (bytes, bytearray)) else str(value)


def _loads(raw: Any, where: str) -> Any:
    try:
        return loads(raw)
    except (ValueError, TypeError) as exc:
        raise CorruptRecordError(f"{where}: not valid JSON ({exc})") from exc


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


class RedisPlumbing:
    """Base of :class:`RedisSessionRepository`; its ``__init__`` sets these."""

    prefix: str
    ttl: float | None
    client: Any
    connect_timeout: float | None
    socket_timeout: float | None
    _url: str | None
    _owns_client: bool

    def describe(self) -> str:
        where = self._url or DEFAULT_URL
        if self._url is None and not self._owns_client:
            where = f"redis client {type(self.client).__name__}"
        else:
            parts = urlsplit(where)
            host = parts.hostname or ""
            netloc = f"{host}:{parts.port}" if parts.port else host
            where = urlunsplit((parts.scheme, netloc, parts.path, "", ""))  # no credentials
        return f"{where} prefix={self.prefix}" + (f" ttl={self.ttl:g}s" if self.ttl else "")

    async def close(self) -> None:
        if self._owns_client:
            await asyncio.to_thread(self.client.close)

    # -- plumbing -----------------------------------------------------------------------------

    def _guard(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        # The sync client's pool is thread-safe and bound to no event loop.
        try:
            return func(*args, **kwargs)
        except (redis.RedisError, RedisClusterException) as exc:  # Cluster's own errors are not RedisErrors
            hint = ""
            if isinstance(exc, redis.TimeoutError) and self.socket_timeout is not None:
                hint = f" (connect_timeout={self.connect_timeout:g}s, socket_timeout={self.socket_timeout:g}s)"
            if isinstance(exc, redis.exceptions.MovedError):
                hint = " (the server is a Redis Cluster node: use redis+cluster:// or ?cluster=true)"
            raise StorageUnavailableError(f"{self.describe()}: {type(exc).__name__}: {exc}{hint}") from exc

    def _k(self, session_id: str) -> SessionKeys:
        return SessionKeys.of(self.prefix, session_id)

    def _keys(self, session_id: str, agent_id: str) -> list[str]:
        """The keys the message scripts declare: session, agent hash, messages list."""
        k = self._k(session_id)
        return [k.session, k.agent(agent_id), k.messages(agent_id)]

    def _script(self, script: Any, keys: Sequence[str], args: Sequence[Any]) -> tuple[str, int]:
        status, number = script(keys=list(keys), args=list(args))
        return _text(status), int(number)

    @staticmethod
    def _where(session_id: str, agent_id: str | None = None, what: str = "") -> str:
        where = f"redis session {session_id!r}"
        if agent_id is not None:
            where += f", agent {agent_id!r}"
        return where + (f", {what}" if what else "")

    @staticmethod
    def _check(status: str, session_id: str, agent_id: str | None = None) -> None:
        """Raise ``SessionNotFoundError`` for a script that found no session or no agent."""
        if status == "nosession":
            raise SessionNotFoundError(f"session {session_id!r} does not exist")
        if status == "noagent":
            raise SessionNotFoundError(f"agent {agent_id!r} does not exist in session {session_id!r}")
