"""kill -9 at random moments of running turns on SQLite: the database stays intact, the session
always loads, its ids stay dense and the next turn works."""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
from pathlib import Path

import pytest

from mooring import Agent
from mooring.models import ScriptedModel
from mooring.session import RepositorySessionManager, open_repository

from helpers.crash import CHILD, run_and_kill, valid_alternation


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["tools", "plain"])
def test_one_hundred_kill_nine_trials_on_sqlite(tmp_path: Path, mode: str) -> None:
    rng = random.Random(20261204)
    db = tmp_path / "sessions.db"
    url = f"sqlite:///{db}"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    trials = int(os.environ.get("MOORING_CRASH_TRIALS", "100"))
    repaired = 0
    for trial in range(trials):
        run_and_kill(script, url, mode, rng)

        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",), f"trial {trial}"
        repository = open_repository(url)
        agent = Agent(
            model=ScriptedModel([f"after crash {trial}"]),
            agent_id="worker",
            session_manager=RepositorySessionManager("crashy", repository),
            callback_handler=None,
        )
        if any(m["content"][0].get("text", "").startswith("[mooring]") for m in agent.messages[-1:]):
            repaired += 1
        assert valid_alternation(agent.messages), f"trial {trial}: restored history is not a valid conversation"
        assert str(agent(f"check {trial}")) == f"after crash {trial}"
        assert len(agent.messages) <= 40, f"trial {trial}: {len(agent.messages)} messages after a turn"
        ids = [r.message_id for r in asyncio.run(repository.read_messages("crashy", "worker"))]
        assert ids == list(range(len(ids))), f"trial {trial}: ids are not dense"
        asyncio.run(repository.close())
    assert repaired > 0
