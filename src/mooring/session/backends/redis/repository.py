"""The Redis backend: one list per (session, agent), conditional writes as Lua scripts.

Keys (``<sid>``, ``<aid>`` and ``<mid>`` are ids with ``%``, ``{``, ``}`` and ``:``
percent-encoded, so a key names exactly one record and no id can break the hash tag)::

    <prefix>:{<sid>}:session          string: the session record (JSON)
    <prefix>:{<sid>}:agents           set of encoded agent ids
    <prefix>:{<sid>}:agent:<aid>      hash: record (JSON), version, replay tokens
    <prefix>:{<sid>}:messages:<aid>   list of message records (JSON); index == message_id
    <prefix>:{<sid>}:multis           set of encoded multi-agent ids
    <prefix>:{<sid>}:multi:<mid>      hash: record (JSON), version, replay token
    <prefix>:{<sid>}:lease:<aid>      string: the lease holder's token, with PX expiry
    <prefix>:sessions                 sorted set indexing sessions for listing

Every key of one session shares the hash tag ``{<sid>}``, so each script touches a single
slot and the backend works on Redis Cluster. The ``<prefix>:sessions`` index is the one key
outside the session's slot: it is written with separate commands and only read by
``list_sessions``, which on Cluster queries the node that holds it.

``delete_session`` removes the known keys in one script, together with any other key under
the session's tag that a ``SCAN`` found (leases, strays); that SCAN walks the database's whole
keyspace, so deleting is the one operation whose cost grows with the database.

With ``ttl`` set, a session expires ``ttl`` seconds after its last write: every write
refreshes the expiry of all of the session's keys in the same script. Expired sessions drop
out of the index the next time it is listed.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import replace
from typing import Any, ClassVar, Literal
from urllib.parse import unquote

from typing_extensions import Self

from mooring._gc import collection_paused
from mooring._ids import validate_id
from mooring.errors import (
    ConfigurationError,
    ConflictError,
    CorruptRecordError,
    LeaseLostError,
    SessionNotFoundError,
    StorageUnavailableError,
    missing_extra,
)
from mooring.session._threaded import ThreadedRepository
from mooring.session.backends.redis import _scripts as lua
from mooring.session.backends.redis._client import RedisPlumbing, _dumps, _loads, _text
from mooring.session.backends.redis._connect import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_SOCKET_TIMEOUT,
    DEFAULT_URL,
    build_client,
    seconds,
    split_url,
)
from mooring.session.backends.redis._scripts import (
    INDEX_SEPARATOR,
    encode_id,
    glob_escape,
    index_member,
    parse_member,
)
from mooring.session.manager import RepositorySessionManager
from mooring.session.records import (
    AgentRecord,
    MessageRecord,
    MultiAgentRecord,
    SessionPage,
    SessionRecord,
    decode_cursor,
    encode_cursor,
    now_iso,
    version_conflict,
)
from mooring.session.repository import Capability, Lease

try:
    import redis
    from redis.exceptions import RedisClusterException
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise missing_extra("redis", "redis-py") from exc

logger = logging.getLogger(__name__)

_SCAN_COUNT = 500


class RedisSessionRepository(RedisPlumbing, ThreadedRepository):
    """Sessions in Redis (standalone or Cluster), through the synchronous redis-py client.

    Example::

        repo = RedisSessionRepository("redis://localhost:6379/0", prefix="myapp", ttl=7 * 86400)

    Args:
        url: a redis-py URL (``redis://``, ``rediss://``, ``unix://``); ignored when ``client``
            is given; default ``redis://localhost:6379/0``.
        client: an existing ``redis.Redis`` or ``redis.cluster.RedisCluster``; it is not
            closed by :meth:`close`.
        prefix: first part of every key, so several apps or tests share one database.
        ttl: seconds a session lives after its last write; ``None`` keeps sessions forever.
        cluster: ``url`` names a Redis Cluster node (implied by ``redis+cluster://``); the
            client is a ``RedisCluster``, which reads the slot map when it is built.
        connect_timeout: seconds to wait for a connection (default 5).
        socket_timeout: seconds to wait for each reply (default 10); a frozen or cut-off
            server raises ``StorageUnavailableError`` after about that long, never retried.

    Each operation runs the blocking client in a worker thread (mooring's shared I/O pool), so one
    repository serves any number of event loops and threads through the client's pool.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset({"lease_expiry", "ttl"})
    lease_poll: ClassVar[tuple[float, float]] = (0.002, 0.05)

    @classmethod
    def from_url(cls, url: str) -> Self:
        """A redis-py URL, or ``redis+cluster://node:port`` for Redis Cluster. Query options:
        ``prefix``, ``ttl`` (seconds), ``connect_timeout`` and ``socket_timeout`` (seconds),
        ``cluster=true`` (a ``redis://`` URL names a Cluster node); others go to redis-py."""
        base, own = split_url(url)
        return cls(base, **own)

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        prefix: str = "mooring",
        ttl: float | None = None,
        cluster: bool = False,
        connect_timeout: float | None = None,
        socket_timeout: float | None = None,
    ) -> None:
        if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
            raise ConfigurationError(f"redis key prefix must be a non-empty string without braces, got {prefix!r}")
        if ttl is not None and not ttl > 0:
            raise ConfigurationError(f"ttl must be a positive number of seconds or None, got {ttl!r}")
        if client is not None and (cluster or connect_timeout is not None or socket_timeout is not None):
            raise ConfigurationError("cluster and the timeouts configure the client mooring builds; set them on yours")
        self.prefix = prefix
        self.ttl = ttl
        self._ttl_ms = max(1, round(ttl * 1000)) if ttl is not None else 0
        self._owns_client = client is None
        self._url = url if client is None else None
        self.connect_timeout: float | None = None
        self.socket_timeout: float | None = None
        if client is None:
            self.connect_timeout = seconds(
                "connect_timeout", DEFAULT_CONNECT_TIMEOUT if connect_timeout is None else connect_timeout
            )
            self.socket_timeout = seconds(
                "socket_timeout", DEFAULT_SOCKET_TIMEOUT if socket_timeout is None else socket_timeout
            )
            try:
                client = build_client(
                    url or DEFAULT_URL,
                    cluster=cluster,
                    connect_timeout=self.connect_timeout,
                    socket_timeout=self.socket_timeout,
                )
            except (redis.RedisError, RedisClusterException) as exc:  # Cluster reads its slot map now
                raise StorageUnavailableError(f"{self.describe()}: {type(exc).__name__}: {exc}") from exc
        self.client: Any = client
        self._index = f"{prefix}:sessions"
        self._create_record_script = client.register_script(lua.CREATE_RECORD)
        self._update_record_script = client.register_script(lua.UPDATE_RECORD)
        self._append_script = client.register_script(lua.APPEND)
        self._update_message_script = client.register_script(lua.UPDATE_MESSAGE)
        self._truncate_script = client.register_script(lua.TRUNCATE)
        self._delete_script = client.register_script(lua.DELETE_SESSION)
        self._lease_acquire_script = client.register_script(lua.LEASE_ACQUIRE)
        self._lease_renew_script = client.register_script(lua.LEASE_RENEW)
        self._lease_release_script = client.register_script(lua.LEASE_RELEASE)

    # -- sessions -----------------------------------------------------------------------------

    def _create_session(self, session: SessionRecord) -> SessionRecord:
        if INDEX_SEPARATOR in session.created_at:
            raise ConfigurationError("session created_at must not contain NUL")
        key = self._k(session.session_id).session
        member = index_member(session.created_at, session.session_id)
        created = self.client.set(key, _dumps(session.to_dict()), nx=True, px=self._ttl_ms or None)
        if not created:
            # A replayed SET (its reply lost) lands here too, and reports a conflict with itself;
            # the session manager reads the stored session on a conflict, so that is harmless.
            stored = self.client.get(key)
            if stored is not None:
                # Re-index the stored session: repairs a create whose ZADD below was lost.
                record = SessionRecord.from_dict(_loads(stored, self._where(session.session_id)), key)
                self.client.zadd(self._index, {index_member(record.created_at, record.session_id): 0})
            raise ConflictError(f"session {session.session_id!r} already exists ({self.describe()})")
        # The index lives outside the session's hash slot, so it cannot join the SET atomically.
        self.client.zadd(self._index, {member: 0})
        logger.debug("session_id=<%s> | created session", session.session_id)
        return session

    def _read_session(self, session_id: str) -> SessionRecord | None:
        raw = self.client.get(self._k(session_id).session)
        if raw is None:
            return None
        where = self._where(session_id, what="session record")
        return SessionRecord.from_dict(_loads(raw, where), where)

    def _list_sessions(self, cursor: str | None, limit: int) -> SessionPage:
        upper = "+" if cursor is None else "(" + index_member(*decode_cursor(cursor))
        live: list[tuple[str, SessionRecord]] = []
        while len(live) <= limit:
            want = limit + 1 - len(live)
            members = [_text(m) for m in self.client.zrevrangebylex(self._index, upper, "-", start=0, num=want)]
            if not members:
                break
            pipe = self.client.pipeline(transaction=False)
            for member in members:
                pipe.get(self._k(parse_member(member)[1]).session)
            dead = []
            for member, raw in zip(members, pipe.execute(), strict=True):
                created_at, session_id = parse_member(member)
                record = self._decode_listed(session_id, raw)
                if record is False:
                    continue  # unreadable: skipped (and logged), but kept in the index
                if record is None or record.created_at != created_at:
                    dead.append(member)  # expired, deleted, or a leftover of an earlier incarnation
                else:
                    live.append((member, record))
            if dead:
                self.client.zrem(self._index, *dead)
                logger.debug("pruned %d expired or deleted sessions from the index", len(dead))
            upper = "(" + members[-1]
            if len(members) < want:
                break
        page = live[:limit]
        next_cursor = None
        if len(live) > limit:
            created_at, session_id = parse_member(page[-1][0])
            next_cursor = encode_cursor(SessionRecord(session_id=session_id, created_at=created_at))
        return SessionPage(sessions=[record for _, record in page], next_cursor=next_cursor)

    def _decode_listed(self, session_id: str, raw: Any) -> SessionRecord | Literal[False] | None:
        """The listed session's record, None if it is gone, False if it cannot be read."""
        if raw is None:
            return None
        try:
            where = self._where(session_id, what="session record")
            return SessionRecord.from_dict(_loads(raw, where), where)
        except CorruptRecordError as exc:  # an unreadable session must not hide the others
            logger.warning("session_id=<%s> | skipped an unreadable session: %s", session_id, exc)
            return False

    def _delete_session(self, session_id: str) -> bool:
        k = self._k(session_id)
        raw = self.client.get(k.session)
        # SCAN finds what the known keys miss (leases, strays); scanning before the atomic
        # delete means a session re-created meanwhile is not wiped by a late scan.
        strays = [_text(key) for key in self.client.scan_iter(match=glob_escape(k.base) + "*", count=_SCAN_COUNT)]
        existed = self._delete_script(keys=[k.session, k.agents, k.multis, *strays], args=[k.base])
        if raw is not None:
            try:
                created_at = SessionRecord.from_dict(_loads(raw, k.session), k.session).created_at
                self.client.zrem(self._index, index_member(created_at, session_id))
            except CorruptRecordError:
                pass  # its index entry is pruned by the next listing
        logger.debug("session_id=<%s> | deleted session (%d keys scanned)", session_id, len(strays))
        return bool(existed) or raw is not None

    # -- agents -------------------------------------------------------------------------------

    def _list_agents(self, session_id: str) -> list[str]:
        return self._members(session_id, "agents")

    def _list_multi_agents(self, session_id: str) -> list[str]:
        return self._members(session_id, "multis")

    def _members(self, session_id: str, which: str) -> list[str]:
        """The decoded ids in the session's ``agents`` or ``multis`` set."""
        k = self._k(session_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.exists(k.session)
        pipe.smembers(k.agents if which == "agents" else k.multis)
        exists, members = pipe.execute()
        if not exists:
            raise SessionNotFoundError(f"session {session_id!r} does not exist")
        return sorted(unquote(_text(m)) for m in members)

    def _create_agent(self, session_id: str, agent: AgentRecord) -> AgentRecord:
        k = self._k(session_id)
        stored = agent.copy()
        stored.version = 1
        status, number = self._script(
            self._create_record_script,
            [k.session, k.agents, k.agent(agent.agent_id), k.messages(agent.agent_id)],
            [k.base, self._ttl_ms, encode_id(agent.agent_id), _dumps(stored.to_dict()), uuid.uuid4().hex],
        )
        self._check(status, session_id)
        if status == "conflict":
            raise ConflictError(f"agent {agent.agent_id!r} already exists in session {session_id!r}", version=number)
        logger.debug("session_id=<%s>, agent_id=<%s> | created agent", session_id, agent.agent_id)
        return stored

    def _read_agent(self, session_id: str, agent_id: str) -> AgentRecord | None:
        raw = self.client.hget(self._keys(session_id, agent_id)[1], "record")
        if raw is None:
            return None
        where = self._where(session_id, agent_id, "agent record")
        return AgentRecord.from_dict(_loads(raw, where), where)

    def _compare_and_set(
        self, session_id: str, key: str, kind: str, new: AgentRecord | MultiAgentRecord, expected_version: int
    ) -> None:
        """Shared by agent and multi-agent records: read ``created_at``, then CAS on the version.

        ``created_at`` never changes after a record is created, so reading it before the
        script (which re-checks the version) is safe.
        """
        k = self._k(session_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.exists(k.session)
        pipe.hmget(key, "record", "version")
        exists, (raw, version) = pipe.execute()
        if not exists:
            raise SessionNotFoundError(f"session {session_id!r} does not exist")
        stored = int(version) if version is not None else 0
        if raw is None or stored != expected_version:
            raise version_conflict(kind, stored, expected_version)
        where = f"{self._where(session_id)}, {kind}"
        new.created_at = type(new).from_dict(_loads(raw, where), where).created_at or new.created_at
        new.version, new.updated_at = expected_version + 1, now_iso()
        status, number = self._script(
            self._update_record_script,
            [k.session, key],
            [k.base, self._ttl_ms, expected_version, _dumps(new.to_dict()), uuid.uuid4().hex],
        )
        self._check(status, session_id)
        if status == "conflict":
            raise version_conflict(kind, number, expected_version)
        logger.debug("session_id=<%s> | %s at version %d", session_id, kind, new.version)

    def _update_agent(self, session_id: str, agent: AgentRecord, expected_version: int) -> AgentRecord:
        new = agent.copy()
        key = self._k(session_id).agent(agent.agent_id)
        self._compare_and_set(session_id, key, f"agent {agent.agent_id!r}", new, expected_version)
        return new

    # -- messages -----------------------------------------------------------------------------

    def _append_messages(self, session_id: str, agent_id: str, messages: list[MessageRecord]) -> int:
        first = messages[0].message_id if messages else 0
        contiguous = all(m.message_id == first + i for i, m in enumerate(messages))
        status, head = self._script(
            self._append_script,
            self._keys(session_id, agent_id),
            [
                self._k(session_id).base,
                self._ttl_ms,
                first,
                1 if contiguous else 0,
                uuid.uuid4().hex,
                *(_dumps(m.to_dict()) for m in messages),
            ],
        )
        self._check(status, session_id, agent_id)
        if status == "conflict":
            raise ConflictError(
                f"message id {first} is not the next free id ({head}) for agent {agent_id!r} in session {session_id!r}",
                head=head,
            )
        logger.debug("session_id=<%s>, agent_id=<%s> | appended %d, head %d", session_id, agent_id, len(messages), head)
        return head

    def _read_messages(self, session_id: str, agent_id: str, start: int, end: int | None) -> list[MessageRecord]:
        start = max(start, 0)
        if end is not None and end <= start:
            return []  # LRANGE would read "end - 1 = -1" as "to the last element"
        raw = self.client.lrange(self._keys(session_id, agent_id)[2], start, -1 if end is None else end - 1)
        out = []
        with collection_paused(len(raw)):
            for offset, item in enumerate(raw):
                where = self._where(session_id, agent_id, f"message {start + offset}")
                out.append(MessageRecord.from_dict(_loads(item, where), where, expected_id=start + offset))
        return out

    def _message_head(self, session_id: str, agent_id: str, hint: int | None) -> int:
        return int(self.client.llen(self._keys(session_id, agent_id)[2]))  # LLEN is O(1): no hint needed

    def _update_message(self, session_id: str, agent_id: str, message: MessageRecord) -> None:
        keys = self._keys(session_id, agent_id)
        created_at = message.created_at
        current = self.client.lindex(keys[2], message.message_id) if message.message_id >= 0 else None
        if current is not None:
            try:
                created_at = str(json.loads(current).get("created_at") or created_at)
            except (ValueError, AttributeError):
                pass  # overwriting an unreadable record is how it gets repaired
        record = replace(message, created_at=created_at, updated_at=now_iso())
        status, _ = self._script(
            self._update_message_script,
            keys,
            [self._k(session_id).base, self._ttl_ms, message.message_id, _dumps(record.to_dict())],
        )
        self._check(status, session_id, agent_id)
        if status == "missing":
            raise SessionNotFoundError(
                f"message {message.message_id} does not exist for agent {agent_id!r} in session {session_id!r}"
            )

    def _truncate_messages(self, session_id: str, agent_id: str, new_head: int, expected_head: int) -> None:
        status, head = self._script(
            self._truncate_script,
            self._keys(session_id, agent_id),
            [self._k(session_id).base, self._ttl_ms, max(new_head, 0), expected_head, uuid.uuid4().hex],
        )
        self._check(status, session_id, agent_id)
        if status == "conflict":
            raise ConflictError(f"head is {head}, not {expected_head}", head=head)
        logger.debug("session_id=<%s>, agent_id=<%s> | truncated to %d", session_id, agent_id, head)

    # -- multi-agent records ------------------------------------------------------------------

    def _create_multi_agent(self, session_id: str, record: MultiAgentRecord) -> MultiAgentRecord:
        k = self._k(session_id)
        stored = replace(record, state=dict(record.state), version=1)
        status, number = self._script(
            self._create_record_script,
            [k.session, k.multis, k.multi(record.multi_agent_id)],
            [k.base, self._ttl_ms, encode_id(record.multi_agent_id), _dumps(stored.to_dict()), uuid.uuid4().hex],
        )
        self._check(status, session_id)
        if status == "conflict":
            raise ConflictError(f"multi-agent {record.multi_agent_id!r} already exists", version=number)
        return stored

    def _read_multi_agent(self, session_id: str, multi_agent_id: str) -> MultiAgentRecord | None:
        raw = self.client.hget(self._k(session_id).multi(multi_agent_id), "record")
        if raw is None:
            return None
        where = f"{self._where(session_id)}, multi-agent {multi_agent_id!r}"
        return MultiAgentRecord.from_dict(_loads(raw, where), where)

    def _update_multi_agent(self, session_id: str, record: MultiAgentRecord, expected_version: int) -> MultiAgentRecord:
        new = replace(record, state=dict(record.state))
        key = self._k(session_id).multi(record.multi_agent_id)
        self._compare_and_set(session_id, key, f"multi-agent {record.multi_agent_id!r}", new, expected_version)
        return new

    # -- leases -------------------------------------------------------------------------------

    @staticmethod
    def _ms(ttl: float) -> int:
        return max(1, round(ttl * 1000))

    def _try_lease(self, session_id: str, agent_id: str, ttl: float) -> Lease | None:
        key = self._k(session_id).lease(agent_id)
        token = uuid.uuid4().hex
        expires = time.time() + ttl
        if not self._lease_acquire_script([key], [token, self._ms(ttl)]):
            return None
        logger.debug("session_id=<%s>, agent_id=<%s> | acquired lease", session_id, agent_id)
        return Lease(session_id=session_id, agent_id=agent_id, token=token, expires_at=expires)

    def _renew_lease(self, lease: Lease, ttl: float) -> Lease:
        key = self._k(lease.session_id).lease(lease.agent_id)
        expires = time.time() + ttl
        if not self._lease_renew_script([key], [lease.token, self._ms(ttl)]):
            raise LeaseLostError(f"lease on session {lease.session_id!r}, agent {lease.agent_id!r} was lost")
        return Lease(session_id=lease.session_id, agent_id=lease.agent_id, token=lease.token, expires_at=expires)

    def _release_lease(self, lease: Lease) -> None:
        self._lease_release_script([self._k(lease.session_id).lease(lease.agent_id)], [lease.token])
        logger.debug("session_id=<%s>, agent_id=<%s> | released lease", lease.session_id, lease.agent_id)


class RedisSessionManager(RepositorySessionManager):
    """Persists an agent's session in Redis.

    Example::

        agent = Agent(agent_id="assistant",
                      session_manager=RedisSessionManager("user-abc-123", "redis://localhost:6379/0", ttl=86400))

    ``url``, ``client``, ``prefix``, ``ttl``, ``cluster``, ``connect_timeout`` and ``socket_timeout``
    build the :class:`RedisSessionRepository`; other
    keyword options go to :class:`RepositorySessionManager` (``lease_wait``, ``fail_fast``,
    ``lease_ttl``).
    """

    def __init__(
        self,
        session_id: str,
        url: str | None = None,
        *,
        client: Any = None,
        prefix: str = "mooring",
        ttl: float | None = None,
        cluster: bool = False,
        connect_timeout: float | None = None,
        socket_timeout: float | None = None,
        **manager_options: Any,
    ) -> None:
        validate_id(session_id, "session_id")
        repository = RedisSessionRepository(
            url,
            client=client,
            prefix=prefix,
            ttl=ttl,
            cluster=cluster,
            connect_timeout=connect_timeout,
            socket_timeout=socket_timeout,
        )
        super().__init__(session_id, repository, **manager_options)
