"""The systems under test, behind one small interface the workloads share.

A *system* is one persistence path: a mooring backend (through ``open_repository``) or one
of Strands' managers. A *store* is a JSON-able dict naming a system and where its data
lives, so a child process can be handed one. Functions here:

- ``probe``: is the system usable in this run ("ok", or "n/a: <reason>");
- ``seed``: lay down a stored session of N messages (full history, or a 40-message window
  with ``removed_message_count = N - 40``) through the system's own API;
- ``build_agent``: an Agent of the right SDK attached to the store (this is the restore);
- ``read_back``: the stored history and state, read raw (no repair), for the checks.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.data import AGENT_ID, WINDOW
from bench.moto import BUCKET

PG_DSN = os.environ.get("MOORING_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("MOORING_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")

# Where each mooring backend lives, for imports made before a child forks.
BACKEND_MODULES = {
    "file": "mooring.session.backends.file.repository",
    "sqlite": "mooring.session.backends.sql.sqlite",
    "postgres": "mooring.session.backends.sql.postgres",
    "redis": "mooring.session.backends.redis.repository",
    "s3": "mooring.session.backends.s3.repository",
}


@dataclass(frozen=True)
class System:
    name: str
    family: str  # "mooring" or "strands"
    backend: str
    label: str


SYSTEMS: dict[str, System] = {
    s.name: s
    for s in [
        System("mooring-file", "mooring", "file", "mooring file (fsync)"),
        System("mooring-file-none", "mooring", "file", "mooring file (durability=none)"),
        System("mooring-sqlite", "mooring", "sqlite", "mooring sqlite"),
        System("mooring-postgres", "mooring", "postgres", "mooring postgres"),
        System("mooring-redis", "mooring", "redis", "mooring redis"),
        System("mooring-s3", "mooring", "s3", "mooring s3 (moto)"),
        System("strands-file", "strands", "file", "Strands FileSessionManager"),
        System("strands-s3", "strands", "s3", "Strands S3SessionManager (moto)"),
        System("snapshot-file", "strands", "file", "Strands Snapshot (LocalFileStorage)"),
        System("snapshot-file-msg", "strands", "file", 'Strands Snapshot (file, save_latest_on="message")'),
        System("snapshot-s3", "strands", "s3", "Strands Snapshot (S3Storage, moto)"),
    ]
}

MOORING_BACKENDS = ["mooring-file", "mooring-sqlite", "mooring-postgres", "mooring-redis", "mooring-s3"]


def is_mooring(name: str) -> bool:
    return SYSTEMS[name].family == "mooring"


def label(name: str) -> str:
    return SYSTEMS[name].label


# -- where stores live -------------------------------------------------------------------------


def store(env: dict[str, Any], name: str, tag: str) -> dict[str, Any]:
    """A store of system ``name`` for ``tag`` (a workload and its parameters); distinct tags
    never share data."""
    root = Path(env["root"]) / "stores" / tag / name
    system = SYSTEMS[name]
    spec: dict[str, Any] = {"system": name, "tag": tag}
    run = env["run_id"]
    if system.backend == "file":
        spec["dir"] = str(root)
    elif system.backend == "sqlite":
        spec["path"] = str(root / "sessions.db")
    elif system.backend == "postgres":
        # One schema per tag, so equal session ids under different tags never meet.
        spec["url"] = f"{PG_DSN}?schema=bench_{run}_{re.sub(r'[^a-z0-9]+', '_', tag.lower())}"
    elif system.backend == "redis":
        spec["url"] = f"{REDIS_URL}?prefix=mooring-bench-{run}:{tag}:"
    elif system.backend == "s3":
        spec["prefix"] = f"{run}/{tag}/{name}"
    return spec


def mooring_url(spec: dict[str, Any], *, durable: bool = True) -> str:
    backend = SYSTEMS[spec["system"]].backend
    if backend == "file":
        none = not durable or spec["system"] == "mooring-file-none"
        return f"file://{spec['dir']}" + ("?durability=none" if none else "")
    if backend == "sqlite":
        return f"sqlite:///{spec['path']}"  # an absolute path supplies the fourth slash
    if backend == "s3":
        return f"s3://{BUCKET}/{spec['prefix']}"
    return str(spec["url"])


def _prepare(spec: dict[str, Any]) -> None:
    for key in ("dir", "path"):
        if key in spec:
            target = Path(spec[key])
            (target if key == "dir" else target.parent).mkdir(parents=True, exist_ok=True)


# -- probing -----------------------------------------------------------------------------------


def _reachable(url: str, port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def probe(env: dict[str, Any], name: str) -> str:
    """``"ok"`` or ``"n/a: <reason>"``; never raises."""
    system = SYSTEMS[name]
    if system.backend == "s3" and not env.get("s3_port"):
        return "n/a: moto server not running"
    if system.backend == "postgres" and not _reachable(PG_DSN, 5432):
        return "n/a: PostgreSQL server 127.0.0.1:5432 unreachable"
    if system.backend == "redis" and not _reachable(REDIS_URL, 6379):
        return "n/a: Redis server 127.0.0.1:6379 unreachable"
    if system.family == "strands":
        return "ok"
    module = BACKEND_MODULES.get(system.backend)
    if module is not None:
        import importlib.util

        if importlib.util.find_spec(module) is None:
            return f"n/a: {module} not present in this checkout"
    spec = store(env, name, "probe")
    try:
        _prepare(spec)
        seed(spec, "probe-session", 4, window=False)
        messages, _ = read_back(spec, "probe-session")
        if len(messages) != 4:
            return f"n/a: smoke test read {len(messages)} of 4 messages back"
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"n/a: {type(exc).__name__}: {first}"[:200]
    return "ok"


# -- mooring -----------------------------------------------------------------------------------


def _mooring_cm_state(window: bool, total: int) -> dict[str, Any]:
    if window:
        return {"__name__": "SlidingWindowConversationManager", "removed_message_count": max(total - WINDOW, 0)}
    return {"__name__": "NullConversationManager", "removed_message_count": 0}


async def _seed_mooring(spec: dict[str, Any], session_id: str, messages: list[dict[str, Any]], window: bool) -> None:
    from mooring.session import open_repository
    from mooring.session.records import AgentRecord, MessageRecord, SessionRecord

    # Setup writes skip fsync: the stored bytes are the same, only the set-up is faster.
    repo = open_repository(mooring_url(spec, durable=False))
    try:
        await repo.create_session(SessionRecord(session_id=session_id))
        cm_state = _mooring_cm_state(window, len(messages))
        record = await repo.create_agent(
            session_id, AgentRecord(agent_id=AGENT_ID, conversation_manager_state=cm_state)
        )
        # Written under the invocation lease, as a turn is: releasing it leaves what a turn leaves
        # (for S3, the window object holding the newest messages).
        lease = await repo.acquire_lease(session_id, AGENT_ID, ttl=600.0, wait=5.0)
        for start in range(0, len(messages), 500):
            batch = [
                MessageRecord(message_id=start + i, message=m) for i, m in enumerate(messages[start : start + 500])
            ]
            await repo.append_messages(session_id, AGENT_ID, batch)
        # The head hint restore starts from, exactly as the session manager leaves it.
        final = AgentRecord(agent_id=AGENT_ID, conversation_manager_state=cm_state, next_message_id=len(messages))
        await repo.update_agent(session_id, final, expected_version=record.version)
        await repo.release_lease(lease)
    finally:
        await repo.close()


def _mooring_cm(cm: str) -> Any:
    from mooring import NullConversationManager, SlidingWindowConversationManager

    return NullConversationManager() if cm == "null" else SlidingWindowConversationManager(WINDOW)


def _mooring_bump() -> Any:
    from mooring import ToolContext, tool

    @tool
    def bump(tag: str, tool_context: ToolContext) -> str:
        """Count one turn in the shared and the per-process state keys."""
        state = tool_context.agent.state
        state.set("counter", int(state.get("counter") or 0) + 1)
        key = f"p{os.getpid()}"
        state.set(key, int(state.get(key) or 0) + 1)
        return tag

    return bump


def _mooring_agent(spec: dict[str, Any] | None, session_id: str, cm: str, tools: bool, messages: Any) -> Any:
    from bench.data import MooringTurnModel
    from mooring import Agent
    from mooring.session import RepositorySessionManager, open_repository

    manager = None
    if spec is not None:
        manager = RepositorySessionManager(session_id, open_repository(mooring_url(spec)), lease_wait=600)
    return Agent(
        model=MooringTurnModel(tools=tools),
        agent_id=AGENT_ID,
        # Only with tools, as on the Strands side: defining a tool builds its schema.
        tools=[_mooring_bump()] if tools else [],
        messages=messages,
        session_manager=manager,
        conversation_manager=_mooring_cm(cm),
        callback_handler=None,
    )


async def _read_mooring(spec: dict[str, Any], session_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from mooring.session import open_repository

    repo = open_repository(mooring_url(spec))
    try:
        records = await repo.read_messages(session_id, AGENT_ID)
        agent = await repo.read_agent(session_id, AGENT_ID)
        return [r.to_message() for r in records], (agent.state if agent else {})
    finally:
        await repo.close()


# -- strands -----------------------------------------------------------------------------------


def _strands_cm(cm: str, removed: int = 0) -> Any:
    from strands.agent.conversation_manager import NullConversationManager, SlidingWindowConversationManager

    manager = NullConversationManager() if cm == "null" else SlidingWindowConversationManager(window_size=WINDOW)
    manager.removed_message_count = removed
    return manager


def _strands_manager(spec: dict[str, Any], session_id: str) -> Any:
    name = spec["system"]
    if name == "strands-file":
        from strands.session.file_session_manager import FileSessionManager

        return FileSessionManager(session_id=session_id, storage_dir=spec["dir"])
    if name == "strands-s3":
        from strands.session.s3_session_manager import S3SessionManager

        return S3SessionManager(session_id=session_id, bucket=BUCKET, prefix=spec["prefix"])
    from strands.session.snapshot_session_manager import SnapshotSessionManager

    storage: Any
    if name == "snapshot-s3":
        from strands.storage import S3Storage

        storage = S3Storage(BUCKET, prefix=spec["prefix"])
    else:
        from strands.storage import LocalFileStorage

        storage = LocalFileStorage(spec["dir"])
    save_on = "message" if name == "snapshot-file-msg" else "invocation"
    return SnapshotSessionManager(session_id, storage=storage, save_latest_on=save_on)  # type: ignore[arg-type]


def _strands_agent(
    spec: dict[str, Any] | None, session_id: str, cm: str, tools: bool, messages: Any, removed: int = 0
) -> Any:
    from strands import Agent, ToolContext, tool

    from bench.data import strands_model

    def bump(tag, tool_context):  # type: ignore[no-untyped-def]
        """Count one turn in the shared and the per-process state keys."""
        state = tool_context.agent.state
        state.set("counter", int(state.get("counter") or 0) + 1)
        key = f"p{os.getpid()}"
        state.set(key, int(state.get(key) or 0) + 1)
        return tag

    # Strands evaluates the annotations in this module's globals, where (with postponed
    # annotations and a lazy import) ToolContext is not defined: give it real objects.
    bump.__annotations__ = {"tag": str, "tool_context": ToolContext, "return": str}

    return Agent(
        model=strands_model(tools=tools),
        agent_id=AGENT_ID,
        tools=[tool(context=True)(bump)] if tools else [],
        messages=messages,
        session_manager=_strands_manager(spec, session_id) if spec is not None else None,
        conversation_manager=_strands_cm(cm, removed),
        callback_handler=None,
    )


def strands_message_objects(prefix: str, session_id: str, messages: list[dict[str, Any]]) -> list[tuple[str, bytes]]:
    """(key, body) of each message exactly as ``S3SessionManager.create_message`` writes it."""
    from strands.session.s3_session_manager import S3SessionManager
    from strands.types.session import SessionMessage

    keyer = S3SessionManager.__new__(S3SessionManager)  # only its key helpers are used
    keyer.prefix = prefix
    out = []
    for i, message in enumerate(messages):
        body = json.dumps(SessionMessage.from_message(message, i).to_dict(), indent=2, ensure_ascii=False)
        out.append((keyer._get_message_path(session_id, AGENT_ID, i), body.encode("utf-8")))
    return out


def _seed_strands(
    spec: dict[str, Any],
    session_id: str,
    messages: list[dict[str, Any]],
    window: bool,
    bulk: Callable[[list[tuple[str, bytes]]], None] | None,
) -> None:
    from strands.types.session import SessionAgent, SessionMessage

    total = len(messages)
    removed = max(total - WINDOW, 0) if window else 0
    cm = "window" if window else "null"
    name = spec["system"]
    if name.startswith("snapshot"):
        # A snapshot holds only what is in memory: with a window, the last 40 messages.
        kept = messages[removed:]
        agent = _strands_agent(spec, session_id, cm, False, kept, removed)
        from strands._async import run_async

        run_async(lambda: agent._session_manager.save_snapshot(agent, is_latest=True))
        return
    manager = _strands_manager(spec, session_id)
    template = _strands_agent(None, session_id, cm, False, [], removed)
    manager.create_agent(session_id, SessionAgent.from_agent(template))
    if name == "strands-s3" and bulk is not None and total > 100:
        bulk(strands_message_objects(spec["prefix"], session_id, messages))
        return

    def put(i: int) -> None:
        manager.create_message(session_id, AGENT_ID, SessionMessage.from_message(messages[i], i))

    if name == "strands-s3":
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, range(total)))
    else:
        for i in range(total):
            put(i)


def _read_strands(spec: dict[str, Any], session_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    name = spec["system"]
    if name.startswith("snapshot"):
        if name == "snapshot-s3":
            import boto3

            key = f"{spec['prefix']}/session/{session_id}/scopes/agent/{AGENT_ID}/snapshots/snapshot_latest.json"
            body = boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
        else:
            path = Path(spec["dir"], "session", session_id, "scopes", "agent", AGENT_ID, "snapshots")
            body = (path / "snapshot_latest.json").read_bytes()
        data = json.loads(body)["data"]
        return list(data.get("messages") or []), dict(data.get("state") or {})
    manager = _strands_manager(spec, session_id)
    messages = [m.to_message() for m in manager.list_messages(session_id, AGENT_ID)]
    agent = manager.read_agent(session_id, AGENT_ID)
    return messages, (agent.state if agent else {})


# -- the interface the workloads use -----------------------------------------------------------


def seed(
    spec: dict[str, Any],
    session_id: str,
    count: int,
    *,
    window: bool,
    bulk: Callable[[list[tuple[str, bytes]]], None] | None = None,
) -> None:
    """Store a session of ``count`` canonical messages (see :mod:`bench.data`)."""
    from bench.data import history

    _prepare(spec)
    messages = history(count)
    if is_mooring(spec["system"]):
        asyncio.run(_seed_mooring(spec, session_id, messages, window))
    else:
        _seed_strands(spec, session_id, messages, window, bulk)


def build_agent(
    spec: dict[str, Any] | None,
    session_id: str,
    *,
    family: str,
    cm: str,
    tools: bool = False,
    messages: list[dict[str, Any]] | None = None,
) -> Any:
    """An Agent of ``family``'s SDK; with a store, attached to it (which restores the session)."""
    if spec is not None:
        _prepare(spec)
    if family == "mooring":
        return _mooring_agent(spec, session_id, cm, tools, messages)
    return _strands_agent(spec, session_id, cm, tools, messages)


def close_agent(agent: Any) -> None:
    """Release a mooring agent's repository connections (Strands managers hold none to close)."""
    manager = getattr(agent, "session_manager", None)
    repository = getattr(manager, "repository", None)
    if repository is not None:
        from mooring._sync import run_sync

        run_sync(repository.close())


def read_back(spec: dict[str, Any], session_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The stored messages (in id order) and agent state, as stored: nothing repaired."""
    if is_mooring(spec["system"]):
        return asyncio.run(_read_mooring(spec, session_id))
    return _read_strands(spec, session_id)


def cleanup(env: dict[str, Any]) -> None:
    """Remove what this run stored in the shared servers (files go with the temp root)."""
    run = env["run_id"]
    try:
        import psycopg

        if _reachable(PG_DSN, 5432):
            with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=3) as conn:
                found = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (f"bench_{run}%",))
                for (schema,) in found.fetchall():
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    except Exception:
        pass  # a schema left behind costs nothing but space
    try:
        import redis

        if _reachable(REDIS_URL, 6379):
            client = redis.Redis.from_url(REDIS_URL)
            for key in client.scan_iter(match=f"*mooring-bench-{run}:*", count=1000):
                client.delete(key)
            client.close()
    except Exception:
        pass
