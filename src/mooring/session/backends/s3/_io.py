"""S3 plumbing for :mod:`mooring.session.backends.s3.repository`: one boto3 client, retries, error mapping, counters.

Everything here is synchronous and thread-safe; the repository runs it in worker threads.

Error mapping (the cause is always chained and the message names ``s3://bucket/key``):

- ``NoSuchKey`` / 404 and ``PreconditionFailed`` (412) / ``ConditionalRequestConflict`` (409)
  become the private signals :class:`NotFound` and :class:`PreconditionFailed`, which the
  repository turns into ``None``, ``ConflictError`` or ``SessionNotFoundError``;
- ``NoSuchBucket`` and access errors (``AccessDenied``, 403, bad or missing credentials) are
  set-up mistakes that no retry fixes: ``ConfigurationError``, saying which;
- throttling (``SlowDown``, ``Throttling``, 503 ...), 5xx and network failures are retried with
  bounded exponential backoff and full jitter, then raise ``StorageUnavailableError``;
- anything else from the driver is ``StorageUnavailableError``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from mooring.errors import ConfigurationError, StorageUnavailableError, missing_extra

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )
    from botocore.exceptions import ConnectionError as BotoConnectionError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise missing_extra("s3", "boto3") from exc

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

T = TypeVar("T")

_THROTTLING = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "503",
        "500",
    }
)
# A 503 SlowDown was certainly not applied; a 5xx or a broken connection may have been.
_CERTAINLY_NOT_APPLIED = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestThrottled", "503"})
_ACCESS = frozenset(
    {
        "AccessDenied",
        "403",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "AccountProblem",
    }
)
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
_PRECONDITION = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})


class NotFound(Exception):
    """The key does not exist (private signal, never leaves the S3 backend)."""


class EmptyObject(Exception):
    """A ranged GET of a zero-byte object (private signal)."""


class PreconditionFailed(Exception):
    """A conditional request lost (private signal). ``ambiguous``: an earlier attempt of the
    same request failed in a way that may have applied it, so the loss may be to ourselves."""

    def __init__(self, ambiguous: bool = False) -> None:
        super().__init__("precondition failed")
        self.ambiguous = ambiguous


@dataclass(frozen=True)
class S3Object:
    body: bytes
    etag: str


def build_client(
    *,
    boto_session: Any,
    region_name: str | None,
    endpoint_url: str | None,
    max_pool_connections: int,
) -> S3Client:
    """A client that leaves retries to :class:`S3Io` (so they are bounded and counted once)."""
    session = boto_session or boto3.session.Session(region_name=region_name)
    config = Config(
        retries={"total_max_attempts": 1},
        max_pool_connections=max_pool_connections,
        connect_timeout=5,
        read_timeout=30,
        user_agent_extra="mooring",
    )
    client: S3Client = session.client("s3", region_name=region_name, endpoint_url=endpoint_url, config=config)
    return client


class S3Io:
    """Bucket-scoped calls with retries, error mapping, request counting and a fan-out pool."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        *,
        max_attempts: int,
        max_concurrency: int,
        put_extra: dict[str, Any],
        probe_key: str,
        verify_conditional: bool,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.max_attempts = max(1, int(max_attempts))
        self.max_concurrency = max(1, int(max_concurrency))
        self.put_extra = put_extra
        self._probe_key = probe_key
        self.support: ConditionalSupport | None = None if verify_conditional else ConditionalSupport()
        self._support_lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        # Every HTTP attempt (retries included) passes through before-send, whoever made it.
        self._handler_id = f"mooring-s3-count-{id(self)}"
        client.meta.events.register("before-send.s3", self._count, unique_id=self._handler_id)

    # -- counting -----------------------------------------------------------------------------

    def _count(self, event_name: str = "", **_: Any) -> None:
        with self._counts_lock:
            self._counts[event_name.rsplit(".", 1)[-1]] += 1

    def counts(self) -> dict[str, int]:
        with self._counts_lock:
            return dict(self._counts)

    def reset_counts(self) -> None:
        with self._counts_lock:
            self._counts.clear()

    # -- calls --------------------------------------------------------------------------------

    def where(self, key: str | None) -> str:
        return f"s3://{self.bucket}/{key}" if key is not None else f"s3://{self.bucket}"

    def call(self, method: str, key: str | None, **params: Any) -> Any:
        """``client.<method>(Bucket=..., Key=key, **params)`` with retries and error mapping."""
        if key is not None:
            params["Key"] = key
        fn = getattr(self.client, method)
        ambiguous = False
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn(Bucket=self.bucket, **params)
            except ClientError as exc:
                error = exc.response.get("Error", {})
                code = str(error.get("Code", ""))
                status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
                if code in _MISSING:
                    raise NotFound() from exc
                if code == "ConditionalRequestConflict" and attempt < self.max_attempts:
                    # 409: a conflicting write to the key was in flight and ours was not applied;
                    # S3 asks for a retry, which then sees the other write's outcome.
                    self._backoff(attempt, method, key, code)
                    continue
                if code in _PRECONDITION or status == 412:
                    raise PreconditionFailed(ambiguous) from exc
                if code == "InvalidRange":
                    raise EmptyObject() from exc
                if code == "NoSuchBucket":
                    raise ConfigurationError(
                        f"S3 bucket {self.bucket!r} does not exist (NoSuchBucket) during {method} on "
                        f"{self.where(key)}: create the bucket or fix the bucket name"
                    ) from exc
                if code in _ACCESS or status == 403:
                    raise ConfigurationError(
                        f"access denied ({code or status}) during {method} on {self.where(key)}: check the "
                        "credentials and that the IAM/bucket policy allows s3:GetObject, s3:PutObject, "
                        "s3:DeleteObject and s3:ListBucket on it"
                    ) from exc
                if (code in _THROTTLING or status >= 500) and attempt < self.max_attempts:
                    ambiguous = ambiguous or code not in _CERTAINLY_NOT_APPLIED
                    self._backoff(attempt, method, key, code or str(status))
                    continue
                raise StorageUnavailableError(
                    f"S3 {method} on {self.where(key)} failed after {attempt} attempt(s): {code or status} "
                    f"{error.get('Message', '')}".rstrip()
                ) from exc
            except (NoCredentialsError, PartialCredentialsError) as exc:
                raise ConfigurationError(f"no usable AWS credentials for {method} on {self.where(key)}: {exc}") from exc
            except (BotoConnectionError, HTTPClientError) as exc:
                if attempt < self.max_attempts:
                    ambiguous = True
                    self._backoff(attempt, method, key, type(exc).__name__)
                    continue
                raise StorageUnavailableError(
                    f"S3 {method} on {self.where(key)} failed after {attempt} attempt(s): cannot reach the "
                    f"endpoint ({exc})"
                ) from exc
            except BotoCoreError as exc:
                raise StorageUnavailableError(f"S3 {method} on {self.where(key)} failed: {exc}") from exc

    def _backoff(self, attempt: int, method: str, key: str | None, reason: str) -> None:
        # Full jitter keeps many throttled writers from retrying in lockstep.
        delay = random.uniform(0, min(2.0, 0.05 * (2 ** (attempt - 1))))
        logger.debug("s3 %s %s | %s, retry %d in %.3fs", method, self.where(key), reason, attempt, delay)
        time.sleep(delay)

    # -- objects ------------------------------------------------------------------------------

    def get(self, key: str) -> S3Object | None:
        try:
            response = self.call("get_object", key)
        except NotFound:
            return None
        body = response["Body"].read()
        return S3Object(body=body, etag=str(response.get("ETag", "")))

    def exists(self, key: str) -> bool:
        """One cheap request. A one-byte ranged GET rather than HEAD: a HEAD error has no body,
        so a missing bucket would look like a missing key."""
        try:
            response = self.call("get_object", key, Range="bytes=0-0")
        except NotFound:
            return False
        except EmptyObject:
            return True
        response["Body"].close()
        return True

    def put(self, key: str, body: bytes, extra: dict[str, Any], **conditions: str) -> str:
        """PutObject; returns the new ETag. ``conditions``: ``IfNoneMatch="*"`` or ``IfMatch=etag``.

        When a retried conditional write loses, the winner may be our own earlier attempt: if
        the stored body is exactly ours, that is a success, not a conflict.
        """
        try:
            params: dict[str, Any] = {"ContentType": "application/json", **extra, **conditions}
            response = self.call("put_object", key, Body=body, **params)
        except PreconditionFailed as exc:
            if exc.ambiguous:
                current = self.get(key)
                if current is not None and current.body == body:
                    return current.etag
            raise
        return str(response.get("ETag", ""))

    def delete(self, key: str, **conditions: str) -> None:
        """DeleteObject; a missing key is not an error (unless a condition names an ETag)."""
        self.call("delete_object", key, **conditions)

    def list_prefixes(self, prefix: str) -> list[str]:
        """CommonPrefixes directly under ``prefix`` (delimiter ``/``), all pages."""
        out: list[str] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"Prefix": prefix, "Delimiter": "/"}
            if token:
                params["ContinuationToken"] = token
            page = self.call("list_objects_v2", None, **params)
            out.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return out

    def list_keys(self, prefix: str) -> list[str]:
        out: list[str] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"Prefix": prefix}
            if token:
                params["ContinuationToken"] = token
            page = self.call("list_objects_v2", None, **params)
            out.extend(o["Key"] for o in page.get("Contents", []))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return out

    def delete_keys(self, keys: Sequence[str]) -> None:
        """DeleteObjects in batches of 1000 (the S3 limit); any per-key error is raised."""
        for i in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[i : i + 1000]]
            response = self.call("delete_objects", None, Delete={"Objects": batch, "Quiet": True})
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                raise StorageUnavailableError(
                    f"S3 DeleteObjects could not delete {len(errors)} key(s), e.g. {self.where(first.get('Key'))}: "
                    f"{first.get('Code')} {first.get('Message', '')}".rstrip()
                )

    # -- fan-out ------------------------------------------------------------------------------

    def map(self, fn: Callable[[Any], T], items: Iterable[Any]) -> list[T]:
        """``[fn(x) for x in items]`` run at most ``max_concurrency`` at a time, in order.

        Called from a worker thread, never from inside the pool (so it cannot deadlock).
        """
        items = list(items)
        if len(items) <= 1:
            return [fn(x) for x in items]
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="mooring-s3")
            pool = self._pool
        return list(pool.map(fn, items))

    def close(self) -> None:
        self.client.meta.events.unregister("before-send.s3", unique_id=self._handler_id)
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    # -- conditional writes -------------------------------------------------------------------

    def conditional_support(self) -> ConditionalSupport:
        """Probe once, at the first conditional write, what the server honours."""
        if self.support is None:
            with self._support_lock:
                if self.support is None:
                    support = probe_conditional_support(self, self._probe_key, self.put_extra)
                    if not support.complete:
                        logger.warning(
                            "bucket=<%s>, put_if_none_match=<%s>, put_if_match=<%s>, delete_if_match=<%s> | this "
                            "S3 server ignores some conditional headers; falling back to check-then-write, so "
                            "only the invocation lease guards against concurrent writers",
                            self.bucket,
                            support.put_if_none_match,
                            support.put_if_match,
                            support.delete_if_match,
                        )
                    self.support = support
        return self.support

    def put_new(self, key: str, body: bytes) -> str:
        """Create ``key``; ``PreconditionFailed`` if it exists (``If-None-Match: *``)."""
        if not self.conditional_support().put_if_none_match:
            if self.exists(key):
                raise PreconditionFailed()
            return self.put(key, body, self.put_extra)
        return self.put(key, body, self.put_extra, IfNoneMatch="*")

    def put_replace(self, key: str, body: bytes, etag: str) -> str:
        """Replace ``key`` if its ETag is still ``etag``; ``PreconditionFailed``/``NotFound`` if not."""
        if not self.conditional_support().put_if_match:
            self._check_etag(key, etag)
            return self.put(key, body, self.put_extra)
        return self.put(key, body, self.put_extra, IfMatch=etag)

    def delete_if(self, key: str, etag: str) -> None:
        """Delete ``key`` if its ETag is still ``etag``."""
        if not self.conditional_support().delete_if_match:
            self._check_etag(key, etag)
            self.delete(key)
            return
        self.delete(key, IfMatch=etag)

    def _check_etag(self, key: str, etag: str) -> None:
        current = self.get(key)
        if current is None:
            raise NotFound()
        if current.etag != etag:
            raise PreconditionFailed()


@dataclass
class ConditionalSupport:
    """Which conditional headers the server honours (found by :func:`probe_conditional_support`)."""

    put_if_none_match: bool = True
    put_if_match: bool = True
    delete_if_match: bool = True

    @property
    def complete(self) -> bool:
        return self.put_if_none_match and self.put_if_match and self.delete_if_match


_NO_SUCH_ETAG = '"00000000000000000000000000000000"'


def probe_conditional_support(io: S3Io, key: str, extra: dict[str, Any]) -> ConditionalSupport:
    """Check that the server refuses writes whose conditions fail.

    Some S3-compatible servers accept ``If-None-Match``/``If-Match`` and ignore them, which
    would silently bring back the overwrites mooring exists to prevent. The probe object at
    ``key`` is kept, so after the first run this usually costs three refused requests.
    """
    support = ConditionalSupport()
    body = b'{"purpose": "mooring checks that conditional writes are honoured"}\n'
    try:
        io.put(key, body, extra, IfNoneMatch="*")
    except PreconditionFailed:
        pass
    else:
        try:
            io.put(key, body, extra, IfNoneMatch="*")
            support.put_if_none_match = False
        except PreconditionFailed:
            pass
    try:
        io.put(key, body, extra, IfMatch=_NO_SUCH_ETAG)
        support.put_if_match = False
    except (PreconditionFailed, NotFound):
        pass
    try:
        io.delete(key, IfMatch=_NO_SUCH_ETAG)
        support.delete_if_match = False
    except (PreconditionFailed, NotFound):
        pass
    return support
