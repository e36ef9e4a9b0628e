"""Any backend by URL: ``open_repository(url)`` picks the store, the agent code stays the same.

Shows: one agent turn stored through the repository a URL names, then a second Agent built
from a fresh repository on the same URL (as a new process would) restoring the conversation.
The default URL is an SQLite database in the current directory, so it runs with no server.

Run (offline, no credentials)::

    python examples/backend_by_url.py                         # sqlite:///./sessions.db
    python examples/backend_by_url.py ./sessions              # the file store
    python examples/backend_by_url.py "redis://127.0.0.1:6379/0?prefix=example"

``--session ID`` picks the session id; ``--cleanup`` deletes the session at the end.
``postgres_backend.py``, ``redis_backend.py`` and ``s3_backend.py`` call :func:`run` with a
URL taken from an environment variable.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from mooring import Agent
from mooring.session import RepositorySessionManager, open_repository


def one_process(url: str, session_id: str, prompt: str) -> int:
    """What one process does: open the store, restore the agent, run one turn, close."""
    repository = open_repository(url)
    try:
        agent = Agent(
            model="offline",
            agent_id="assistant",
            callback_handler=None,
            session_manager=RepositorySessionManager(session_id, repository),
        )
        restored = len(agent.messages)
        print(f"[{repository.describe()}] restored {restored} messages; > {prompt}")
        print(f"  {agent(prompt)}")
        return restored
    finally:
        asyncio.run(repository.close())


def run(url: str, session_id: str = "example-session", cleanup: bool = False) -> None:
    """Two agents, one after the other, on one session in the store ``url`` names."""
    one_process(url, session_id, "What's the capital of Japan?")
    restored = one_process(url, session_id, "What did I just ask you?")
    if restored < 2:
        raise SystemExit(f"expected the first turn to be restored from {url}, got {restored} messages")
    print(f"ok: the second agent continued session {session_id!r} with {restored} stored messages")
    if cleanup:
        repository = open_repository(url)
        try:
            asyncio.run(repository.delete_session(session_id))
        finally:
            asyncio.run(repository.close())
        print(f"deleted session {session_id!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default=f"sqlite:///{Path.cwd() / 'sessions.db'}")
    parser.add_argument("--session", default="example-session")
    parser.add_argument("--cleanup", action="store_true")
    args = parser.parse_args()
    run(args.url, args.session, args.cleanup)


if __name__ == "__main__":
    main()
