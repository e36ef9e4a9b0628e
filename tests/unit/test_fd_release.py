"""An Agent on the file store dropped without closing its repository leaves no fds open."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

from mooring import Agent
from mooring.models import ScriptedModel
from mooring.session import FileSessionManager


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd to count open fds")
def test_dropped_agents_release_their_kept_directory_fds(tmp_path: Path) -> None:
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    gc.collect()
    before = open_fds()
    for i in range(30):
        agent = Agent(
            model=ScriptedModel(["ok"]),
            agent_id="a",
            callback_handler=None,
            session_manager=FileSessionManager(session_id="s", storage_dir=str(tmp_path)),
        )
        agent(f"turn {i}")
        del agent
    gc.collect()
    assert open_fds() - before <= 2  # 30 agents kept about 4 fds each before
