"""``sessions show --tail/--limit`` on a long session, and the pager on a terminal only."""

from __future__ import annotations

import asyncio
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import Cli

from mooring.session.backends.file import FileSessionRepository
from mooring.session.records import AgentRecord, MessageRecord, SessionRecord

MESSAGES = 5000
SRC = str(Path(__file__).resolve().parents[3] / "src")


def _long_session(store: Path, session_id: str = "long", count: int = MESSAGES) -> None:
    """``count`` alternating user/assistant messages, written through the repository API."""

    async def write() -> None:
        repository = FileSessionRepository(store, durability="none")
        try:
            await repository.create_session(SessionRecord(session_id=session_id))
            await repository.create_agent(session_id, AgentRecord(agent_id="default"))
            records = [
                MessageRecord(
                    message_id=i,
                    message={"role": "user" if i % 2 == 0 else "assistant", "content": [{"text": f"message {i}"}]},
                )
                for i in range(count)
            ]
            for first in range(0, count, 500):
                await repository.append_messages(session_id, "default", records[first : first + 500])
        finally:
            await repository.close()

    asyncio.run(write())


@pytest.fixture(scope="module")
def long_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("long") / "store"
    _long_session(store)
    return store


def test_tail_shows_the_last_messages_of_a_5000_message_session(long_store: Path, cli: Cli) -> None:
    code, out, err = cli("sessions", "show", "long", "--tail", "3", "--store", str(long_store))
    assert code == 0, err
    assert "message 4997" in out and "message 4999" in out and "message 4996" not in out
    assert "showing messages 4997..4999 of 5000" in out
    assert len(out.splitlines()) < 20

    data = cli.json("sessions", "show", "long", "--tail", "3", "--store", str(long_store))
    agent = data["agents"][0]
    assert agent["message_head"] == MESSAGES
    assert [m["message_id"] for m in agent["messages"]] == [4997, 4998, 4999]


def test_limit_shows_the_first_messages(long_store: Path, cli: Cli) -> None:
    code, out, err = cli("sessions", "show", "long", "--limit", "2", "--store", str(long_store))
    assert code == 0, err
    assert "message 0" in out and "message 1" in out and "message 2" not in out
    assert "showing messages 0..1 of 5000" in out
    data = cli.json("sessions", "show", "long", "--limit", "2", "--store", str(long_store))
    assert [m["content"][0]["text"] for m in data["agents"][0]["messages"]] == ["message 0", "message 1"]


def test_tail_and_limit_larger_than_the_session_show_everything(long_store: Path, cli: Cli) -> None:
    for option in ("--tail", "--limit"):
        data = cli.json("sessions", "show", "long", option, "9999", "--store", str(long_store))
        assert len(data["agents"][0]["messages"]) == MESSAGES
    data = cli.json("sessions", "show", "long", "--tail", "0", "--store", str(long_store))
    assert data["agents"][0]["messages"] == []


def test_tail_and_limit_are_checked(long_store: Path, cli: Cli) -> None:
    code, _, err = cli("sessions", "show", "long", "--tail", "-1", "--store", str(long_store))
    assert code == 2 and "--tail" in err
    code, _, err = cli("sessions", "show", "long", "--tail", "1", "--limit", "1", "--store", str(long_store))
    assert code == 2 and "not allowed with" in err


# -- the pager --------------------------------------------------------------------------------


def _fake_pager(tmp_path: Path) -> tuple[Path, Path]:
    """A PAGER that records it ran and what it was given."""
    record = tmp_path / "paged.txt"
    script = tmp_path / "fake-pager"
    script.write_text(f'#!/bin/sh\necho "args: $*" > {record}\ncat >> {record}\n')
    script.chmod(0o755)
    return script, record


def _run_under_pty(argv: list[str], env: dict[str, str], timeout: float = 120.0) -> tuple[int, str]:
    """Run ``argv`` with stdin/stdout/stderr on a new pseudo-terminal; (exit code, output)."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(argv, stdin=terminal, stdout=terminal, stderr=terminal, env=env, close_fds=True)
    os.close(terminal)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if ready:
                try:
                    data = os.read(controller, 65536)
                except OSError:  # EIO: the terminal closed
                    break
                if not data:
                    break
                chunks.append(data)
            elif process.poll() is not None:
                break
        code = process.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if process.poll() is None:
            process.kill()
        os.close(controller)
    return code, b"".join(chunks).decode(errors="replace")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PAGER", "LESS")}
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def test_show_on_a_terminal_goes_through_pager(tmp_path: Path) -> None:
    store = tmp_path / "store"
    _long_session(store, count=40)
    pager, record = _fake_pager(tmp_path)
    code, screen = _run_under_pty(
        [sys.executable, "-m", "mooring", "sessions", "show", "long", "--store", str(store)], _env(PAGER=str(pager))
    )
    assert code == 0, screen
    paged = record.read_text()
    assert "message 0" in paged and "message 39" in paged
    assert "message 39" not in screen  # it went to the pager, not straight to the terminal


def test_show_never_pages_when_piped_or_json(tmp_path: Path) -> None:
    store = tmp_path / "store"
    _long_session(store, count=40)
    pager, record = _fake_pager(tmp_path)
    argv = [sys.executable, "-m", "mooring", "sessions", "show", "long", "--store", str(store)]
    piped = subprocess.run(argv, capture_output=True, text=True, env=_env(PAGER=str(pager)), timeout=120)
    assert piped.returncode == 0, piped.stderr
    assert "message 39" in piped.stdout and not record.exists()

    code, screen = _run_under_pty([*argv, "--json"], _env(PAGER=str(pager)))
    assert code == 0 and '"message 39"' in screen
    assert not record.exists()


def test_show_on_a_terminal_without_a_pager_prints_directly(tmp_path: Path) -> None:
    store = tmp_path / "store"
    _long_session(store, count=4)
    argv = [sys.executable, "-m", "mooring", "sessions", "show", "long", "--store", str(store)]
    for pager in ("cat", "", "no-such-pager-anywhere"):
        code, screen = _run_under_pty(argv, _env(PAGER=pager))
        assert code == 0 and "message 3" in screen, (pager, screen)
