"""``open_repository(url)``: choose a backend by URL, importing its driver only then.

=================================  ==============================================
URL                                backend
=================================  ==============================================
``/path`` or ``file:///path``       :class:`FileSessionRepository` (the default)
``memory:``                         :class:`InMemorySessionRepository`
``sqlite:///path/to.db``            ``SQLiteSessionRepository`` (``mooring.session.sqlite``)
``postgresql://user@host/db``       ``PostgresSessionRepository`` (extra ``postgres``)
``redis://host:6379/0``             ``RedisSessionRepository`` (extra ``redis``)
``s3://bucket/prefix``              ``S3SessionRepository`` (extra ``s3``)
=================================  ==============================================

Query parameters are passed as keyword options where a backend documents them, for example
``file:///data/sessions?durability=none`` or ``postgresql://.../db?schema=myapp``.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from mooring.errors import ConfigurationError
from mooring.session.repository import SessionRepository


def default_store_url() -> str:
    """``$MOORING_STORE``, else the default file store."""
    from mooring.session.file import default_storage_dir

    return os.environ.get("MOORING_STORE") or str(default_storage_dir())


def open_repository(url: str | os.PathLike[str] | None = None) -> SessionRepository:
    """Build the repository a store URL names (``None``: :func:`default_store_url`)."""
    raw = os.fspath(url) if url is not None else default_store_url()
    if not raw:
        raise ConfigurationError("empty store URL")
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    options: dict[str, Any] = dict(parse_qsl(parts.query))
    if scheme in ("", "file") or (len(scheme) == 1 and raw[1:3] in (":\\", ":/")):
        from mooring.session.file import FileSessionRepository

        path = unquote(parts.path) if scheme == "file" else raw.split("?", 1)[0]
        if scheme == "file" and parts.netloc not in ("", "localhost"):
            raise ConfigurationError(f"file URLs name a local path (file:///path), got {raw!r}")
        if not path:
            raise ConfigurationError(f"store URL {raw!r} names no directory")
        return FileSessionRepository(path, **options)
    if scheme == "memory":
        from mooring.session.memory import InMemorySessionRepository

        return InMemorySessionRepository()
    if scheme == "sqlite":
        from mooring.session.sqlite import SQLiteSessionRepository

        # URL semantics, as for file:: sqlite:///abs/path.db is absolute, sqlite:rel.db relative.
        path = unquote(parts.netloc + parts.path)
        if path.startswith("//"):
            path = "/" + path.lstrip("/")
        if not path:
            raise ConfigurationError(f"sqlite URL {raw!r} names no database file (sqlite:///path/to.db)")
        return SQLiteSessionRepository(path, **options)
    if scheme in ("postgres", "postgresql"):
        from mooring.session.postgres import PostgresSessionRepository

        schema = options.pop("schema", None)
        dsn = raw.split("?", 1)[0]
        if options:
            dsn += "?" + "&".join(f"{k}={v}" for k, v in options.items())
        return PostgresSessionRepository(dsn, **({"schema": schema} if schema else {}))
    if scheme in ("redis", "rediss", "unix"):
        from mooring.session.redis import RedisSessionRepository

        redis_options: dict[str, Any] = {}
        if "prefix" in options:
            redis_options["prefix"] = options.pop("prefix")
        if "ttl" in options:
            redis_options["ttl"] = float(options.pop("ttl"))
        base = raw.split("?", 1)[0]
        if options:
            base += "?" + "&".join(f"{k}={v}" for k, v in options.items())
        return RedisSessionRepository(base, **redis_options)
    if scheme == "s3":
        from mooring.session.s3 import S3SessionRepository

        if not parts.netloc:
            raise ConfigurationError(f"s3 URL {raw!r} names no bucket (s3://bucket/prefix)")
        return S3SessionRepository(parts.netloc, parts.path.strip("/"), **options)
    raise ConfigurationError(
        f"unknown store URL scheme {scheme!r} in {raw!r}; use a path, file://, sqlite://, postgresql://, "
        "redis:// or s3://"
    )
