"""`mooring chat` on a session whose lease another real process holds (a turn blocked in a tool).

The holder is a separate Python process running an Agent whose tool waits for a file; the
chat is a second process, fed through a pipe or driven on a pseudo-terminal.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_cli_chat import TIMEOUT, Terminal

from mooring.cli.chat import KEPT_NOTE

SRC = str(Path(__file__).resolve().parents[3] / "src")

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from mooring import Agent, tool
    from mooring.models import ScriptedModel, tool_call
    from mooring.session import RepositorySessionManager, open_repository

    store, gate = sys.argv[1], Path(sys.argv[2])

    @tool
    def wait_for_gate() -> str:
        \"\"\"Block until the test opens the gate.\"\"\"
        (gate.parent / "started").write_text("")
        deadline = time.monotonic() + 120
        while not gate.exists():
            if time.monotonic() > deadline:
                raise SystemExit("the test never opened the gate")
            time.sleep(0.05)
        return "gate open"

    agent = Agent(
        model=ScriptedModel([[tool_call("wait_for_gate", {}, tool_use_id="t1")], "held and done"]),
        agent_id="default",
        tools=[wait_for_gate],
        session_manager=RepositorySessionManager("busy", open_repository(store)),
        callback_handler=None,
    )
    agent("hold the session")
    """
)


@dataclass
class Holder:
    process: subprocess.Popen[str]
    gate: Path

    def release(self) -> None:
        self.gate.write_text("")
        assert self.process.wait(timeout=TIMEOUT) == 0, self.process.stderr.read() if self.process.stderr else ""


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "NO_COLOR": "1", **extra}


@pytest.fixture(params=["file", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return str(tmp_path / "store")
    return f"sqlite:///{tmp_path / 'sessions.db'}"  # an absolute path: sqlite:////tmp/...


@pytest.fixture
def holder(store_url: str, tmp_path: Path) -> Iterator[Holder]:
    gates = tmp_path / "gates"
    gates.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, store_url, str(gates / "open")],
        env=_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    held = Holder(process, gates / "open")
    deadline = time.monotonic() + TIMEOUT
    while not (gates / "started").exists():
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the holder never started its turn"
        time.sleep(0.05)
    try:
        yield held
    finally:
        held.gate.write_text("")
        try:
            process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def _chat_argv(store_url: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "mooring", "chat", "--session", "busy", "--store", store_url, *extra]


def _texts(store_url: str) -> list[str]:
    shown = subprocess.run(
        [sys.executable, "-m", "mooring", "sessions", "show", "busy", "--store", store_url, "--json"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=TIMEOUT,
        check=True,
    )
    messages = json.loads(shown.stdout)["agents"][0]["messages"]
    return [block["text"] for m in messages for block in m["content"] if "text" in block]


def test_piped_chat_names_the_holder_gives_up_and_exits_1(store_url: str, holder: Holder) -> None:
    done = subprocess.run(
        _chat_argv(store_url, "--wait", "2"),
        input="hello\nsecond prompt\n",
        capture_output=True,
        text=True,
        env=_env(),
        timeout=TIMEOUT,
    )
    assert done.returncode == 1, done
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr  # one line when it starts waiting, one when it gives up
    assert "is busy" in lines[0] and f"pid {holder.process.pid}" in lines[0] and "waiting up to 2s" in lines[0]
    assert lines[1].startswith("mooring: error: ") and "gave up after waiting 2s" in lines[1]
    assert "Traceback" not in done.stderr
    holder.release()
    assert _texts(store_url) == ["hold the session", "held and done"]  # nothing of the chat's


def test_piped_chat_waits_for_the_holder_then_runs_the_prompt(store_url: str, holder: Holder) -> None:
    chat = subprocess.Popen(
        _chat_argv(store_url),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    assert chat.stdin is not None and chat.stderr is not None
    chat.stdin.write("What's the capital of France?\n")
    chat.stdin.close()
    deadline = time.monotonic() + TIMEOUT
    first = ""
    while not first:
        assert time.monotonic() < deadline, "the chat never said it was waiting"
        ready, _, _ = select.select([chat.stderr], [], [], 1.0)
        if ready:
            first = chat.stderr.readline()
            assert first, "the chat closed stderr without saying it was waiting"
    assert "is busy" in first and "waiting up to 60s" in first
    assert chat.poll() is None  # still waiting, not failed
    holder.release()
    assert chat.wait(timeout=TIMEOUT) == 0
    assert chat.stdout is not None
    out, err = chat.stdout.read(), chat.stderr.read()
    chat.stdout.close()
    chat.stderr.close()
    assert "Paris" in out and err == ""
    texts = _texts(store_url)
    assert texts[:2] == ["hold the session", "held and done"]
    assert texts[2] == "What's the capital of France?" and "Paris" in texts[3]


def test_ctrl_c_on_a_terminal_stops_waiting_and_keeps_the_prompt(store_url: str, holder: Holder) -> None:
    term = Terminal(_chat_argv(store_url), _env(TERM="dumb"))
    term.expect("you> ")
    term.send("What's the capital of France?")
    term.expect("is busy")
    term.expect(f"pid {holder.process.pid}")
    term.expect("Ctrl-C stops waiting")
    os.write(term.fd, b"\x03")
    term.expect("stopped waiting")
    term.expect(KEPT_NOTE)
    term.expect("you> ")
    holder.release()
    term.send("")  # the kept prompt is already typed in: Enter sends it
    term.expect("The capital of France is Paris.")
    term.expect("you> ")
    term.send("/quit")
    assert term.wait() == 0
    assert _texts(store_url)[2] == "What's the capital of France?"
