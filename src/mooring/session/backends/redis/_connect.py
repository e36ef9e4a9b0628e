"""How the Redis repository builds its client: URL options, timeouts, retries, and Cluster.

Timeouts bound every call: ``connect_timeout`` (TCP connect) and ``socket_timeout`` (each
reply). No mooring command blocks on the server (lease waits poll from the client), so any
reply slower than ``socket_timeout`` means the server is frozen or cut off.

Retries: a ``ConnectionError`` (refused, reset, closed) is retried a few times quickly, which
replaces a pooled connection a restarted server dropped; every write the backend sends is
safe to replay (see :mod:`._scripts`). A timeout is never retried: the wait would multiply,
and the command may still run on the server once it wakes up.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode, urlsplit

from mooring.errors import ConfigurationError, missing_extra
from mooring.session.url import query_options, scheme_of, without_query

try:
    import redis
    from redis.backoff import ExponentialWithJitterBackoff
    from redis.cluster import RedisCluster
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise missing_extra("redis", "redis-py") from exc

DEFAULT_URL = "redis://localhost:6379/0"
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_SOCKET_TIMEOUT = 10.0

# A blip (failover, a killed connection) is retried a few times quickly; a server that stays
# down surfaces as StorageUnavailableError within a fraction of a second.
RETRIES = 3

# ``redis+cluster://`` is ``redis://`` to a Cluster node (``rediss+cluster://``: with TLS).
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def seconds(name: str, value: Any) -> float:
    """``value`` as a positive, finite number of seconds; ``ConfigurationError`` naming ``name``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not (number > 0 and math.isfinite(number)):
        raise ConfigurationError(f"redis {name} must be a positive number of seconds, got {value!r}")
    return number


def _flag(name: str, value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ConfigurationError(f"redis URL option {name} must be true or false, got {value!r}")


def split_url(url: str) -> tuple[str, dict[str, Any]]:
    """The URL without mooring's own query options, and those options as keyword arguments.

    Mooring's options: ``prefix``, ``ttl``, ``connect_timeout``, ``socket_timeout``, ``cluster``;
    any other parameter stays in the URL for redis-py.
    """
    options = query_options(url)
    own: dict[str, Any] = {}
    if "socket_connect_timeout" in options:
        raise ConfigurationError("redis URL option socket_connect_timeout is spelled connect_timeout in mooring")
    if "prefix" in options:
        own["prefix"] = options.pop("prefix")
    for name in ("ttl", "connect_timeout", "socket_timeout"):
        if name in options:
            own[name] = seconds(f"URL option {name}", options.pop(name))
    if "cluster" in options:
        own["cluster"] = _flag("cluster", options.pop("cluster"))
    base = without_query(url)
    if options:
        base += "?" + urlencode(options)
    return base, own


def _database(url: str) -> str:
    """The database a redis URL names (path ``/N`` or ``?db=N``), ``""`` when it names none."""
    path = urlsplit(url).path.strip("/")
    return str(query_options(url).get("db", path))


def _cluster_class() -> type[Any]:
    # A timeout is not worth a retry on Cluster either (see the module docstring).
    allowed = tuple(e for e in RedisCluster.ERRORS_ALLOW_RETRY if not issubclass(e, redis.TimeoutError))
    return type("BoundedRedisCluster", (RedisCluster,), {"ERRORS_ALLOW_RETRY": allowed})


_Cluster = _cluster_class()


def build_client(url: str, *, cluster: bool, connect_timeout: float, socket_timeout: float) -> Any:
    """A ``redis.Redis`` (or, for Cluster, a ``RedisCluster``) with bounded waits and retries."""
    scheme = scheme_of(url)
    if scheme in CLUSTER_SCHEMES:
        url, cluster = CLUSTER_SCHEMES[scheme] + url[len(scheme) :], True
    retry = Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.2), RETRIES, supported_errors=(redis.ConnectionError,))
    timeouts = {"socket_connect_timeout": connect_timeout, "socket_timeout": socket_timeout}
    try:
        if not cluster:
            return redis.Redis.from_url(url, retry=retry, **timeouts)
        if scheme_of(url) not in ("redis", "rediss"):
            raise ConfigurationError(f"Redis Cluster needs a redis:// or rediss:// node address, got {url!r}")
        if _database(url) not in ("", "0"):
            raise ConfigurationError(f"Redis Cluster has only database 0 (db=0 or no path in the URL), got {url!r}")
        # The startup node is asked for the slot map right away.
        return _Cluster.from_url(url, retry=retry, **timeouts)
    except ValueError as exc:
        raise ConfigurationError(f"invalid redis URL: {exc}") from exc
