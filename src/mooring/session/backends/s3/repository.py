"""The S3 backend: Strands' S3 key layout, made safe for many writers by conditional requests.

Keys under ``s3://<bucket>/<prefix>/``, identical to the file backend's tree and to Strands'
``S3SessionManager``, with the same JSON bodies (``indent=2``)::

    session_<id>/session.json
    session_<id>/agents/agent_<id>/agent.json
    session_<id>/agents/agent_<id>/messages/message_<N>.json
    session_<id>/multi_agents/multi_agent_<id>/multi_agent.json
    session_<id>/.leases/agent_<id>.json          (mooring only; Strands never reads it)
    session_<id>/.windows/agent_<id>.json         (mooring only: the newest messages, advisory)

- A new message, session, agent or multi-agent record is ``PutObject`` with
  ``If-None-Match: *``; a taken id raises ``ConflictError`` carrying the head.
- The agent and multi-agent records are compare-and-set: GET, compare the ``version`` in the
  body, then ``PutObject`` with ``If-Match`` on the ETag that GET returned.
- The invocation lease is an object created with ``If-None-Match``, renewed and taken over
  (only once its ``expires_at`` has passed) with ``If-Match``, released with ``DeleteObject``
  ``If-Match``, so a holder never removes its successor's lease.
- Restore never lists: ``read_window`` GETs the window object (:mod:`._window`), a copy of the
  newest messages written once per turn, and probes that its head is still free: with the agent
  record, 3 requests whatever the window's length. Without a usable window object it GETs the
  window ``[start, hint)`` and probes that ``message_<hint>`` is absent, in one concurrent
  round (42 requests for 40 messages). ``message_head(hint)`` alone checks ``message_<hint>``
  absent and ``message_<hint-1>`` present, and gallops only when the hint is wrong;
  ``read_messages`` GETs keys by name, concurrently.

On first write the repository checks once that the server refuses failed conditions (some
S3-compatible servers ignore the headers). Where one is ignored it logs a warning and falls
back to check-then-write, leaving the lease as the only guard against concurrent writers.

Errors: see :mod:`mooring.session.backends.s3._io` (``NoSuchBucket`` and access errors are
``ConfigurationError``; throttling and network failures are retried, then
``StorageUnavailableError``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from typing_extensions import Self

from mooring._ids import validate_id
from mooring.errors import (
    ConfigurationError,
    ConflictError,
    CorruptRecordError,
    InvalidIdentifierError,
    SessionNotFoundError,
)
from mooring.session._layout import encode
from mooring.session._threaded import ThreadedRepository
from mooring.session.backends.s3._io import (
    ConditionalSupport,
    NotFound,
    PreconditionFailed,
    S3Io,
    build_client,
)
from mooring.session.backends.s3._keys import find_head
from mooring.session.backends.s3._lease import S3Leases
from mooring.session.backends.s3._reads import S3Reads
from mooring.session.backends.s3._window import DEFAULT_WINDOW_MESSAGES, S3Windows
from mooring.session.manager import RepositorySessionManager
from mooring.session.records import (
    AgentRecord,
    MessageRecord,
    MultiAgentRecord,
    SessionPage,
    SessionRecord,
    now_iso,
    page_sessions,
    version_conflict,
)
from mooring.session.repository import Capability, Lease
from mooring.session.url import query_options

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["S3SessionManager", "S3SessionRepository"]

logger = logging.getLogger(__name__)


_UPDATE_ATTEMPTS = 5
_RESERVED_PUT_ARGS = frozenset({"Bucket", "Key", "Body", "IfMatch", "IfNoneMatch"})


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):  # query options from open_repository arrive as strings
        return value.strip().lower() not in ("0", "false", "no", "off", "")
    return bool(value)


class S3SessionRepository(S3Reads, ThreadedRepository):
    """Sessions in an S3 bucket, readable and writable by Strands' ``S3SessionManager`` too.

    Example::

        repo = S3SessionRepository("my-bucket", "agents/prod", region_name="eu-west-1",
                                   put_object_kwargs={"ServerSideEncryption": "aws:kms",
                                                      "SSEKMSKeyId": "alias/sessions"})

    Args:
        bucket: an existing bucket.
        prefix: key prefix; leading and trailing slashes are ignored.
        boto_session / client / region_name / endpoint_url: how to reach S3. A given ``client``
            is used as is (its own retry settings then add to ours) and gets a request-counting
            event handler; otherwise one is built from ``boto_session`` (default: a new
            ``boto3`` session with the standard credential chain).
        put_object_kwargs: extra ``PutObject`` parameters for every write (``ServerSideEncryption``,
            ``SSEKMSKeyId``, ``StorageClass``, ``Tagging`` ...).
        max_concurrency: parallel GETs when reading a range of messages.
        max_attempts: tries per request on throttling, 5xx and network errors.
        lease_clock_skew: seconds added to an expired lease's deadline before taking it over.
            Expiry compares the holder's clock (in the lease body) with ours; fencing by the
            conditional appends keeps data safe either way, this only avoids needless takeovers
            between hosts whose clocks disagree.
        verify_conditional_writes: check once, at the first write, that the server honours
            ``If-None-Match``/``If-Match`` (a probe object under ``<prefix>/.mooring/``).
        window_messages: how many of the newest messages the window object keeps (one PUT per
            turn, so a windowed restore is 3 requests); 0 turns the window object off.

    ``request_counts`` counts HTTP requests by operation (``GetObject``, ``PutObject``,
    ``ListObjectsV2`` ...) since construction or :meth:`reset_request_counts`.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset({"lease_expiry"})
    lease_poll: ClassVar[tuple[float, float]] = (0.01, 0.25)

    @classmethod
    def from_url(cls, url: str) -> Self:
        """``s3://bucket/prefix``; ``?region_name=...&endpoint_url=...`` set the client options."""
        parts = urlsplit(url)
        if not parts.netloc:
            raise ConfigurationError(f"s3 URL {url!r} names no bucket (s3://bucket/prefix)")
        options: dict[str, Any] = query_options(url)
        for name in ("max_concurrency", "max_attempts", "window_messages"):
            if name in options:
                options[name] = int(options[name])
        return cls(parts.netloc, parts.path.strip("/"), **options)

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        boto_session: Any = None,
        client: S3Client | None = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        put_object_kwargs: dict[str, Any] | None = None,
        max_concurrency: int = 16,
        max_attempts: int = 5,
        lease_clock_skew: float = 0.0,
        verify_conditional_writes: bool = True,
        window_messages: int = DEFAULT_WINDOW_MESSAGES,
    ) -> None:
        if not bucket or not isinstance(bucket, str):
            raise ConfigurationError("S3SessionRepository needs a bucket name")
        extra = dict(put_object_kwargs or {})
        reserved = sorted(_RESERVED_PUT_ARGS.intersection(extra))
        if reserved:
            raise ConfigurationError(f"put_object_kwargs may not set {', '.join(reserved)}: mooring sets them")
        max_concurrency = int(max_concurrency)
        if max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if isinstance(window_messages, bool) or not isinstance(window_messages, int) or window_messages < 0:
            raise ConfigurationError(f"window_messages must be a whole number >= 0, got {window_messages!r}")
        self.bucket = bucket
        self.prefix = (prefix or "").strip("/")
        self._base = f"{self.prefix}/" if self.prefix else ""
        self.put_object_kwargs = extra
        self._owns_client = client is None
        if client is None:
            client = build_client(
                boto_session=boto_session,
                region_name=region_name,
                endpoint_url=endpoint_url,
                max_pool_connections=max_concurrency + 8,
            )
        self.client = client
        self._io = S3Io(
            client,
            bucket,
            max_attempts=int(max_attempts),
            max_concurrency=max_concurrency,
            put_extra=extra,
            probe_key=f"{self._base}.mooring/conditional-probe.json",
            verify_conditional=_as_bool(verify_conditional_writes),
        )
        self._leases = S3Leases(self._io, clock_skew=float(lease_clock_skew))
        self._windows = S3Windows(self._io, self._window_key, window_messages=window_messages)
        # (session, agent) -> (ETag, version, created_at) of agent.json as last read or written
        self._agents_seen: dict[tuple[str, str], tuple[str, int, str]] = {}

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def request_counts(self) -> dict[str, int]:
        """HTTP requests made through the client, by S3 operation name."""
        return self._io.counts()

    def reset_request_counts(self) -> None:
        self._io.reset_counts()

    @property
    def conditional_support(self) -> ConditionalSupport | None:
        """Which conditional headers the server honours (``None`` until the first write checks)."""
        return self._io.support

    async def close(self) -> None:
        await asyncio.to_thread(self._io.close)
        if self._owns_client:
            self.client.close()

    # -- sessions -----------------------------------------------------------------------------

    def _create_session(self, session: SessionRecord) -> SessionRecord:
        key = f"{self._session_dir(session.session_id)}session.json"
        try:
            self._io.put_new(key, encode(session.to_dict()))
        except PreconditionFailed:
            raise ConflictError(f"session {session.session_id!r} already exists ({self._where(key)})") from None
        return session

    def _read_session(self, session_id: str) -> SessionRecord | None:
        key = f"{self._session_dir(session_id)}session.json"
        obj = self._io.get(key)
        return None if obj is None else SessionRecord.from_dict(self._decode(key, obj), self._where(key))

    def _all_sessions(self) -> list[SessionRecord]:
        ids = []
        for common in self._io.list_prefixes(self._base):
            name = common[len(self._base) :].rstrip("/")
            if not name.startswith("session_"):
                continue
            try:
                ids.append(validate_id(name[len("session_") :], "session_id"))
            except InvalidIdentifierError:
                continue  # not a key mooring or Strands could have written

        def read(session_id: str) -> SessionRecord | None:
            try:
                return self._read_session(session_id)
            except CorruptRecordError:
                return None  # an unreadable session must not hide the others

        return [r for r in self._io.map(read, ids) if r is not None]

    def _list_sessions(self, cursor: str | None, limit: int) -> SessionPage:
        return page_sessions(self._all_sessions(), cursor=cursor, limit=limit)

    def _delete_session(self, session_id: str) -> bool:
        root = self._session_dir(session_id)
        marker = f"{root}session.json"
        self._windows.forget_session(session_id)
        for seen in [k for k in self._agents_seen if k[0] == session_id]:
            del self._agents_seen[seen]
        keys = self._io.list_keys(root)
        # session.json goes last: a delete cut short leaves a visible session that a second
        # delete finishes, never orphaned agents that a new session of the same id would inherit.
        self._io.delete_keys([k for k in keys if k != marker])
        if marker in keys:
            self._io.delete_keys([marker])
        return marker in keys

    # -- agents -------------------------------------------------------------------------------

    def _list_agents(self, session_id: str) -> list[str]:
        self._require_session(session_id)
        base = f"{self._session_dir(session_id)}agents/"
        names = [p[len(base) :].rstrip("/") for p in self._io.list_prefixes(base)]
        return sorted(n[len("agent_") :] for n in names if n.startswith("agent_"))

    def _list_multi_agents(self, session_id: str) -> list[str]:
        self._require_session(session_id)
        base = f"{self._session_dir(session_id)}multi_agents/"
        names = [p[len(base) :].rstrip("/") for p in self._io.list_prefixes(base)]
        return sorted(n[len("multi_agent_") :] for n in names if n.startswith("multi_agent_"))

    def _create_agent(self, session_id: str, agent: AgentRecord) -> AgentRecord:
        self._require_session(session_id)
        stored = agent.copy()
        stored.version = 1
        key = f"{self._agent_dir(session_id, agent.agent_id)}agent.json"
        try:
            etag = self._io.put_new(key, encode(stored.to_dict()))
        except PreconditionFailed:
            raise ConflictError(
                f"agent {agent.agent_id!r} already exists in session {session_id!r}", version=1
            ) from None
        self._agent_seen(session_id, stored, etag)
        return stored

    def _get_agent(self, session_id: str, agent_id: str) -> tuple[AgentRecord, str] | None:
        key = f"{self._agent_dir(session_id, agent_id)}agent.json"
        obj = self._io.get(key)
        if obj is None:
            return None
        record = AgentRecord.from_dict(self._decode(key, obj), self._where(key))
        self._agent_seen(session_id, record, obj.etag)
        return record, obj.etag

    def _agent_seen(self, session_id: str, record: AgentRecord, etag: str) -> None:
        self._agents_seen[(session_id, record.agent_id)] = (etag, record.version, record.created_at)
        self._windows.agent_seen((session_id, record.agent_id), etag)

    def _read_agent(self, session_id: str, agent_id: str) -> AgentRecord | None:
        found = self._get_agent(session_id, agent_id)
        return found[0] if found else None

    def _update_agent(self, session_id: str, agent: AgentRecord, expected_version: int) -> AgentRecord:
        key = f"{self._agent_dir(session_id, agent.agent_id)}agent.json"
        seen = self._agents_seen.get((session_id, agent.agent_id))
        if seen is not None and seen[1] == expected_version:
            # The copy we last read or wrote is at the expected version: If-Match on its ETag
            # is the compare-and-set, with no GET. Changed since: read it and compare below.
            new = agent.successor(expected_version, seen[2])
            try:
                self._agent_seen(session_id, new, self._io.put_replace(key, encode(new.to_dict()), seen[0]))
                return new
            except (PreconditionFailed, NotFound):
                pass
        found = self._get_agent(session_id, agent.agent_id)
        if found is None:
            self._require_session(session_id)
            raise ConflictError(f"agent {agent.agent_id!r} does not exist in session {session_id!r}", version=0)
        current, etag = found
        if current.version != expected_version:
            raise version_conflict(
                f"agent {agent.agent_id!r} in session {session_id!r}", current.version, expected_version
            )
        new = agent.successor(expected_version, current.created_at)
        try:
            new_etag = self._io.put_replace(key, encode(new.to_dict()), etag)
        except (PreconditionFailed, NotFound):
            # Another writer committed between our GET and PUT; report what it left.
            now = self._get_agent(session_id, agent.agent_id)
            stored = now[0].version if now else 0
            raise ConflictError(
                f"agent {agent.agent_id!r} in session {session_id!r} changed concurrently (now version {stored})",
                version=stored,
            ) from None
        self._agent_seen(session_id, new, new_etag)
        return new

    # -- messages -----------------------------------------------------------------------------

    def _message_head(self, session_id: str, agent_id: str, hint: int | None) -> int:
        return find_head(self._io, lambda i: self._message_key(session_id, agent_id, i), hint)

    def _append_conflict(self, session_id: str, agent_id: str, message_id: int, why: str) -> ConflictError:
        head = self._message_head(session_id, agent_id, message_id)
        if head == 0:
            self._require_agent(session_id, agent_id)
        return ConflictError(
            f"message id {message_id} {why} for agent {agent_id!r} in session {session_id!r} (head is {head})",
            head=head,
        )

    def _append_messages(self, session_id: str, agent_id: str, messages: list[MessageRecord]) -> int:
        if not messages:
            self._require_agent(session_id, agent_id)
            return self._message_head(session_id, agent_id, None)
        first = messages[0].message_id
        contiguous = all(r.message_id == first + i for i, r in enumerate(messages))
        if first < 0 or not contiguous:
            raise self._append_conflict(session_id, agent_id, max(first, 0), "is not the next free id")
        if first == 0:
            self._require_agent(session_id, agent_id)
        elif not self._io.exists(self._message_key(session_id, agent_id, first - 1)):
            raise self._append_conflict(session_id, agent_id, first, "is past the head")
        # One PUT at a time, in id order: message i never becomes visible before i-1, so a
        # crash (or a conflict half way) leaves a dense prefix and the head stays well defined.
        # Concurrent PUTs would be faster for big batches but could leave gaps that block or
        # scramble later appends. Under the invocation lease batches are a few messages long.
        for record in messages:
            try:
                self._io.put_new(self._message_key(session_id, agent_id, record.message_id), encode(record.to_dict()))
            except PreconditionFailed:
                raise self._append_conflict(session_id, agent_id, record.message_id, "was already taken") from None
        self._windows.appended((session_id, agent_id), messages)
        return messages[-1].message_id + 1

    def _update_message(self, session_id: str, agent_id: str, message: MessageRecord) -> None:
        key = self._message_key(session_id, agent_id, message.message_id)
        self._windows.before_edit((session_id, agent_id))
        for _ in range(_UPDATE_ATTEMPTS):
            current = self._io.get(key)
            if current is None:
                raise SessionNotFoundError(f"message {message.message_id} does not exist ({self._where(key)})")
            stored = self._decode(key, current)
            record = MessageRecord(
                message_id=message.message_id,
                message=message.message,
                redact_message=message.redact_message,
                created_at=str((stored.get("created_at") if isinstance(stored, dict) else None) or message.created_at),
                updated_at=now_iso(),
                extra=message.extra,
            )
            try:
                # If-Match: never resurrect a message truncated meanwhile; last writer wins otherwise.
                self._io.put_replace(key, encode(record.to_dict()), current.etag)
                self._windows.edited((session_id, agent_id), record)
                return
            except NotFound:
                raise SessionNotFoundError(f"message {message.message_id} was removed ({self._where(key)})") from None
            except PreconditionFailed:
                continue
        raise ConflictError(f"{self._where(key)} kept changing; gave up after {_UPDATE_ATTEMPTS} attempts")

    def _truncate_messages(self, session_id: str, agent_id: str, new_head: int, expected_head: int) -> None:
        self._require_agent(session_id, agent_id)
        head = self._message_head(session_id, agent_id, expected_head)
        if head != expected_head:
            raise ConflictError(f"head is {head}, not {expected_head}", head=head)
        self._windows.before_edit((session_id, agent_id))
        for message_id in range(head - 1, max(new_head, 0) - 1, -1):  # highest first: a dense prefix remains
            self._io.delete(self._message_key(session_id, agent_id, message_id))
        self._windows.truncated((session_id, agent_id), new_head)

    # -- multi-agent records ------------------------------------------------------------------

    def _create_multi_agent(self, session_id: str, record: MultiAgentRecord) -> MultiAgentRecord:
        self._require_session(session_id)
        stored = record.first()
        key = self._multi_key(session_id, record.multi_agent_id)
        try:
            self._io.put_new(key, encode(stored.to_dict()))
        except PreconditionFailed:
            raise ConflictError(f"multi-agent {record.multi_agent_id!r} already exists", version=1) from None
        return stored

    def _read_multi_agent(self, session_id: str, multi_agent_id: str) -> MultiAgentRecord | None:
        found = self._get_multi(session_id, multi_agent_id)
        return found[0] if found else None

    def _get_multi(self, session_id: str, multi_agent_id: str) -> tuple[MultiAgentRecord, str] | None:
        key = self._multi_key(session_id, multi_agent_id)
        obj = self._io.get(key)
        if obj is None:
            return None
        return MultiAgentRecord.from_dict(self._decode(key, obj), self._where(key)), obj.etag

    def _update_multi_agent(self, session_id: str, record: MultiAgentRecord, expected_version: int) -> MultiAgentRecord:
        found = self._get_multi(session_id, record.multi_agent_id)
        if found is None:
            self._require_session(session_id)
            raise ConflictError(f"multi-agent {record.multi_agent_id!r} does not exist", version=0)
        current, etag = found
        if current.version != expected_version:
            raise version_conflict(f"multi-agent {record.multi_agent_id!r}", current.version, expected_version)
        new = record.successor(expected_version, current.created_at)
        try:
            self._io.put_replace(self._multi_key(session_id, record.multi_agent_id), encode(new.to_dict()), etag)
        except (PreconditionFailed, NotFound):
            now = self._get_multi(session_id, record.multi_agent_id)
            stored = now[0].version if now else 0
            raise ConflictError(
                f"multi-agent {record.multi_agent_id!r} changed concurrently (now version {stored})", version=stored
            ) from None
        return new

    # -- invocation leases --------------------------------------------------------------------

    def _try_lease(self, session_id: str, agent_id: str, ttl: float) -> Lease | None:
        return self._leases.try_acquire(self._lease_key(session_id, agent_id), session_id, agent_id, ttl)

    def _renew_lease(self, lease: Lease, ttl: float) -> Lease:
        return self._leases.renew(self._lease_key(lease.session_id, lease.agent_id), lease, ttl)

    def _release_lease(self, lease: Lease) -> None:
        try:
            self._windows.flush((lease.session_id, lease.agent_id))
        except Exception:
            # Advisory: the next restore reads the messages themselves instead.
            logger.warning("could not store the window object of %s", lease.agent_id, exc_info=True)
        self._leases.release(self._lease_key(lease.session_id, lease.agent_id), lease)


class S3SessionManager(RepositorySessionManager):
    """Persists agents to S3 in the Strands ``S3SessionManager`` layout, safely for many writers.

    Example::

        agent = Agent(agent_id="assistant",
                      session_manager=S3SessionManager("user-abc-123", "my-bucket", "sessions/",
                                                       region_name="us-east-1"))

    Other keyword options go to :class:`RepositorySessionManager` (``lease_wait``,
    ``fail_fast``, ``lease_ttl``).
    """

    def __init__(
        self,
        session_id: str,
        bucket: str,
        prefix: str = "",
        *,
        boto_session: Any = None,
        client: S3Client | None = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        put_object_kwargs: dict[str, Any] | None = None,
        **manager_options: Any,
    ) -> None:
        validate_id(session_id, "session_id")
        repository = S3SessionRepository(
            bucket,
            prefix,
            boto_session=boto_session,
            client=client,
            region_name=region_name,
            endpoint_url=endpoint_url,
            put_object_kwargs=put_object_kwargs,
        )
        self.bucket = repository.bucket
        self.prefix = repository.prefix
        super().__init__(session_id, repository, **manager_options)
