"""``open_repository(url)``: choose a backend by URL scheme, importing its driver only then.

=================================  ==============================================
URL                                backend
=================================  ==============================================
``/path`` or ``file:///path``       :class:`FileSessionRepository` (the default)
``memory:``                         :class:`InMemorySessionRepository`
``sqlite:////abs/path/to.db``       ``SQLiteSessionRepository`` (``sqlite:///rel.db``: relative)
``postgresql://user@host/db``       ``PostgresSessionRepository`` (extra ``postgres``)
``redis://host:6379/0``             ``RedisSessionRepository`` (extra ``redis``)
``redis+cluster://host:7000``       ``RedisSessionRepository`` on Redis Cluster
``s3://bucket/prefix``              ``S3SessionRepository`` (extra ``s3``)
=================================  ==============================================

Each backend parses its own URL in its ``from_url`` class method; query parameters become
keyword options where the backend documents them, for example
``file:///data/sessions?durability=none`` or ``postgresql://.../db?schema=myapp``.

A backend in another package registers its scheme as an entry point in the group
``mooring.backends``, naming its repository class::

    [project.entry-points."mooring.backends"]
    etcd = "mooring_etcd:EtcdSessionRepository"
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from mooring.errors import ConfigurationError
from mooring.session.repository import SessionRepository

ENTRY_POINT_GROUP = "mooring.backends"

# scheme -> "module:Class" of the repository that serves it.
BUILTIN_BACKENDS: dict[str, str] = {
    "file": "mooring.session.backends.file:FileSessionRepository",
    "memory": "mooring.session.backends.memory:InMemorySessionRepository",
    "sqlite": "mooring.session.backends.sql.sqlite:SQLiteSessionRepository",
    "postgresql": "mooring.session.backends.sql.postgres:PostgresSessionRepository",
    "postgres": "mooring.session.backends.sql.postgres:PostgresSessionRepository",
    "redis": "mooring.session.backends.redis:RedisSessionRepository",
    "rediss": "mooring.session.backends.redis:RedisSessionRepository",
    "redis+cluster": "mooring.session.backends.redis:RedisSessionRepository",
    "rediss+cluster": "mooring.session.backends.redis:RedisSessionRepository",
    "unix": "mooring.session.backends.redis:RedisSessionRepository",
    "s3": "mooring.session.backends.s3:S3SessionRepository",
}


def default_storage_dir() -> Path:
    """``$MOORING_HOME/sessions``, else the user data directory; never a temporary directory."""
    home = os.environ.get("MOORING_HOME")
    if home:
        return Path(home).expanduser() / "sessions"
    import platformdirs

    return Path(platformdirs.user_data_dir("mooring", appauthor=False)) / "sessions"


def default_store_url() -> str:
    """``$MOORING_STORE``, else the default file store."""
    return os.environ.get("MOORING_STORE") or str(default_storage_dir())


def scheme_of(url: str) -> str:
    """The URL's scheme, lower-cased; ``"file"`` for a plain path (``C:\\x`` included)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "" or (len(scheme) == 1 and url[1:3] in (":\\", ":/")):
        return "file"
    return scheme


def query_options(url: str) -> dict[str, Any]:
    """The URL's query parameters as keyword options (values stay strings)."""
    return dict(parse_qsl(urlsplit(url).query))


def without_query(url: str) -> str:
    return url.split("?", 1)[0]


def backend_target(scheme: str) -> str | None:
    """``"module:Class"`` of the repository for ``scheme``: built in, else an entry point."""
    target = BUILTIN_BACKENDS.get(scheme)
    if target is not None:
        return target
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == scheme:
            return str(entry.value)
    return None


def repository_class(target: str) -> type[SessionRepository]:
    """Import ``"module:Class"`` and check that it is a :class:`SessionRepository`."""
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, SessionRepository)):
        raise ConfigurationError(f"store backend {target!r} is not a SessionRepository class")
    return cls


def open_repository(url: str | os.PathLike[str] | None = None) -> SessionRepository:
    """Build the repository a store URL names (``None``: :func:`default_store_url`)."""
    raw = os.fspath(url) if url is not None else default_store_url()
    if not raw:
        raise ConfigurationError("empty store URL")
    scheme = scheme_of(raw)
    target = backend_target(scheme)
    if target is None:
        known = ", ".join(f"{s}://" for s in sorted(set(BUILTIN_BACKENDS) - {"file", "memory"}))
        raise ConfigurationError(f"unknown store URL scheme {scheme!r} in {raw!r}; use a path, file://, {known}")
    return repository_class(target).from_url(raw)
