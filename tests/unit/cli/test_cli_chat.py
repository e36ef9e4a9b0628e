"""`mooring chat`: driven through a stdin pipe and a pseudo-terminal, slash commands, and Ctrl-C."""

from __future__ import annotations

import asyncio
import io
import json
import os
import pty
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import message_files, stored_messages, word_count

from mooring.agent.agent import INTERRUPTED_TEXT
from mooring.cli.chat import INTERRUPTED_NOTE, ChatSession, chat_loop
from mooring.models import ScriptedModel, tool_call
from mooring.session import FileSessionRepository
from mooring.types import text_of, tool_result_ids, tool_uses

TIMEOUT = 60


def chat(store: Path, *args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mooring", "chat", "--store", str(store), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )


def agent_record(store: Path, session_id: str, agent_id: str = "default") -> dict[str, Any]:
    path = store / f"session_{session_id}" / "agents" / f"agent_{agent_id}" / "agent.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def assert_well_formed(messages: list[dict[str, Any]]) -> None:
    """Alternating roles, every toolUse answered in the next message, and no dangling prompt."""
    assert messages, "no messages"
    for index, message in enumerate(messages):
        assert message["role"] == ("user" if index % 2 == 0 else "assistant"), (index, messages)
        uses = {u["toolUseId"] for u in tool_uses(message)}
        if uses:
            assert set(tool_result_ids(messages[index + 1])) == uses
    assert messages[-1]["role"] == "assistant"
    assert not tool_uses(messages[-1])


# -- through a pipe ---------------------------------------------------------------------------


def test_conversation_quit_restart_and_history_through_stdin(store: Path) -> None:
    first = chat(store, "--session", "s1", stdin="What's the capital of France?\nWhat did I just ask you?\n/quit\n")
    assert first.returncode == 0, first.stderr
    assert "session s1 (new)" in first.stdout
    assert "The capital of France is Paris." in first.stdout
    assert 'You asked: "What\'s the capital of France?"' in first.stdout
    assert message_files(store, "s1") == [f"message_{i}.json" for i in range(4)]

    second = chat(store, "--session", "s1", stdin="/history\n")  # end of input also quits
    assert second.returncode == 0, second.stderr
    assert "restored 4 messages" in second.stdout
    history = second.stdout.split("/quit leaves.", 1)[1]
    assert "#0 user\n  What's the capital of France?" in history
    assert "#1 assistant\n  [offline model] The capital of France is Paris." in history
    assert "#2 user\n  What did I just ask you?" in history
    assert history.index("#0 user") < history.index("#3 assistant")

    third = chat(store, "--session", "s1", stdin="What did I just ask you?\n")
    assert 'You asked: "What did I just ask you?"' in third.stdout  # the restored history reached the model


def test_a_new_session_id_is_generated_and_printed(store: Path) -> None:
    done = chat(store, stdin="hello\n/state\n")
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("new session id: "))
    session_id = line.removeprefix("new session id: ")
    assert session_id.startswith("chat-")
    assert message_files(store, session_id) == ["message_0.json", "message_1.json"]
    state = json.loads(done.stdout[done.stdout.index("{") : done.stdout.rindex("}") + 1])
    assert state["session_id"] == session_id and state["message_head"] == 2 and state["model"] == "offline"


def test_undo_removes_the_last_turn_on_disk(store: Path) -> None:
    done = chat(store, "--session", "s1", stdin="first question\nsecond question\n/undo\n/history\n/quit\n")
    assert done.returncode == 0, done.stderr
    assert "removed the last turn: messages 2..3 (2 messages)" in done.stdout
    history = done.stdout.split("removed the last turn", 1)[1]
    assert "first question" in history and "second question" not in history

    assert message_files(store, "s1") == ["message_0.json", "message_1.json"]
    assert agent_record(store, "s1")["_mooring"]["next_message_id"] <= 2  # a hint never ahead of the store

    again = chat(store, "--session", "s1", stdin="third question\n/undo\n/undo\n/undo\n")
    assert "restored 2 messages" in again.stdout
    assert again.stdout.count("removed the last turn") == 2
    assert "nothing to undo" in again.stdout
    assert message_files(store, "s1") == []
    assert agent_record(store, "s1")["_mooring"]["next_message_id"] == 0


def test_undo_of_a_tool_turn_keeps_memory_and_store_in_step(store: Path) -> None:
    model = ScriptedModel(["plain answer", [tool_call("word_count", {"text": "a b c"}, "t1")], "3 words", "after"])
    session = ChatSession(
        repository=FileSessionRepository(store), session_id="s1", model=model, tools=[word_count], out=io.StringIO()
    )
    assert session.send("plain")
    assert session.send("count a b c")
    assert len(message_files(store, "s1")) == 6

    session.undo()
    assert len(message_files(store, "s1")) == 2
    assert session.agent.messages == stored_messages(store, "s1")
    assert session.send("next")
    assert [text_of(m) for m in stored_messages(store, "s1")] == ["plain", "plain answer", "next", "after"]


def test_fork_command_creates_the_copy(store: Path) -> None:
    done = chat(store, "--session", "s1", stdin="hello there\n/fork s1-fork\n/quit\n")
    assert done.returncode == 0, done.stderr
    assert "forked session s1 into s1-fork (2 messages)" in done.stdout
    assert stored_messages(store, "s1-fork") == stored_messages(store, "s1")
    resumed = chat(store, "--session", "s1-fork", stdin="/history\n")
    assert "restored 2 messages" in resumed.stdout and "hello there" in resumed.stdout


def test_unknown_commands_and_errors_do_not_end_the_chat(store: Path) -> None:
    done = chat(store, "--session", "s1", stdin="/nope\n/fork\n/fork s1\nhello\n/quit\n")
    assert done.returncode == 0
    assert "unknown command /nope" in done.stdout
    assert "usage: /fork NEW_ID" in done.stdout
    assert "mooring: error:" in done.stderr  # /fork onto itself
    assert message_files(store, "s1") == ["message_0.json", "message_1.json"]


def test_bad_model_is_a_one_line_error(store: Path) -> None:
    done = chat(store, "--session", "s1", "--model", "nosuchprovider:x", stdin="hello\n")
    assert done.returncode == 1
    assert done.stderr.startswith("mooring: error: ") and "Traceback" not in done.stderr


# -- through a pseudo-terminal ----------------------------------------------------------------


class Terminal:
    """A child process on a pty, read until expected text appears."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: becomes the pty's session leader, then runs the CLI
            try:
                os.execvpe(argv[0], argv, env)
            finally:
                os._exit(127)
        self.buffer = ""

    def expect(self, text: str, timeout: float = TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"did not see {text!r}; output so far:\n{self.buffer}")
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"terminal closed before {text!r}; output:\n{self.buffer}")
                self.buffer += chunk.decode(errors="replace")
        before, _, after = self.buffer.partition(text)
        self.buffer = after
        return before

    def send(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\r")

    def wait(self) -> int:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            try:
                os.read(self.fd, 4096)
            except OSError:
                time.sleep(0.05)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError("the chat did not exit")


def _pty_env(store: Path) -> dict[str, str]:
    return {**os.environ, "NO_COLOR": "1", "TERM": "dumb", "MOORING_STORE": str(store)}


def test_chat_in_a_pseudo_terminal(store: Path) -> None:
    term = Terminal([sys.executable, "-m", "mooring", "chat", "--session", "tty"], _pty_env(store))
    term.expect("session tty (new)")
    term.expect("you> ")
    term.send("What's the capital of France?")
    term.expect("The capital of France is Paris.")
    term.expect("you> ")
    term.send("/history")
    term.expect("#1 assistant")
    term.expect("you> ")
    term.send("/quit")
    assert term.wait() == 0
    assert message_files(store, "tty") == ["message_0.json", "message_1.json"]

    term = Terminal([sys.executable, "-m", "mooring", "chat", "--session", "tty"], _pty_env(store))
    term.expect("restored 2 messages")
    term.expect("you> ")
    term.send("/history")
    term.expect("What's the capital of France?")
    term.expect("you> ")
    os.write(term.fd, b"\x04")  # Ctrl-D leaves too
    assert term.wait() == 0


# -- Ctrl-C during a reply --------------------------------------------------------------------

LONG = "This answer streams slowly, one small piece at a time, so that it can be interrupted. " * 4


class Interrupt:
    """An on_event callback that raises KeyboardInterrupt at the n-th event matching ``key``."""

    def __init__(self, key: str, at: int = 1) -> None:
        self.key, self.at, self.seen = key, at, 0

    def __call__(self, event: dict[str, Any]) -> None:
        if self.key in event:
            self.seen += 1
            if self.seen == self.at:
                raise KeyboardInterrupt


def test_ctrl_c_while_text_streams_leaves_no_dangling_prompt(store: Path) -> None:
    out = io.StringIO()
    model = ScriptedModel(["first answer", LONG, "the next answer"], chunk_size=3)
    session = ChatSession(repository=FileSessionRepository(store), session_id="s1", model=model, out=out)
    assert session.send("first")
    session.on_event = Interrupt("data", at=3)

    assert session.send("this one gets interrupted") is False
    assert INTERRUPTED_NOTE in out.getvalue()
    # Nothing of the interrupted turn was stored: not the prompt, not a partial answer.
    assert [text_of(m) for m in stored_messages(store, "s1")] == ["first", "first answer"]
    assert session.agent.messages == stored_messages(store, "s1")
    assert agent_record(store, "s1")["_mooring"]["next_message_id"] <= 2  # a hint never ahead of the store

    session.on_event = None
    assert session.send("next")
    assert [text_of(m) for m in stored_messages(store, "s1")] == ["first", "first answer", "next", "the next answer"]
    assert model.calls[-1].messages[-1]["content"][0]["text"] == "next"
    assert len(model.calls[-1].messages) == 3  # the interrupted prompt never reached the model again


def test_ctrl_c_between_tool_call_and_result_closes_the_turn(store: Path) -> None:
    model = ScriptedModel([[{"text": "Counting."}, tool_call("word_count", {"text": "a b"}, "t1")], "after"])
    session = ChatSession(
        repository=FileSessionRepository(store),
        session_id="s1",
        model=model,
        tools=[word_count],
        out=io.StringIO(),
        on_event=Interrupt("tool_use"),
    )
    assert session.send("count a b") is False

    stored = stored_messages(store, "s1")
    # The answered prompt and the tool call had been stored; the reload closed the turn.
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
    assert tool_result_ids(stored[2]) == ["t1"] and stored[2]["content"][0]["toolResult"]["status"] == "error"
    assert text_of(stored[3]) == INTERRUPTED_TEXT
    assert_well_formed(stored)
    assert session.agent.messages == stored

    session.on_event = None
    assert session.send("again")
    assert_well_formed(stored_messages(store, "s1"))


def test_cancellation_takes_the_same_path_as_keyboard_interrupt(store: Path) -> None:
    model = ScriptedModel(["first answer", LONG, "the next answer"], chunk_size=2, delay=0.01)
    session = ChatSession(repository=FileSessionRepository(store), session_id="s1", model=model, out=io.StringIO())
    assert session.send("first")

    async def interrupt_midway() -> None:
        streaming = asyncio.Event()
        session.on_event = lambda event: streaming.set() if "data" in event else None
        task = asyncio.create_task(session.reply_async("cancelled question"))
        await streaming.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(interrupt_midway())
    assert [text_of(m) for m in stored_messages(store, "s1")] == ["first", "first answer"]
    assert session.agent.messages == stored_messages(store, "s1")  # the Agent rolled its prompt back
    session.on_event = None
    assert session.send("next")
    assert [text_of(m) for m in stored_messages(store, "s1")][2:] == ["next", "the next answer"]


DRIVER = textwrap.dedent(
    """
    import sys
    from mooring.cli.chat import ChatSession, chat_loop
    from mooring.models import ScriptedModel
    from mooring.session import open_repository

    model = ScriptedModel(["first answer", "x" * 4000, "the next answer"], chunk_size=1, delay=0.005)
    session = ChatSession(repository=open_repository(sys.argv[1]), session_id="s1", model=model)
    sys.exit(chat_loop(session, sys.stdin))
    """
)


def test_sigint_during_a_reply_in_a_real_process(store: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(store)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        child.stdin.write("first\nsecond\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "first answer"
        streamed = child.stdout.read(200)  # the slow second answer is streaming now
        assert set(streamed) == {"x"}
        child.send_signal(signal.SIGINT)
        child.stdin.write("third\n/quit\n")
        child.stdin.flush()
        out, err = child.communicate(timeout=TIMEOUT)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err
    assert INTERRUPTED_NOTE in out
    assert out.rstrip().endswith("the next answer")
    stored = stored_messages(store, "s1")
    assert [text_of(m) for m in stored] == ["first", "first answer", "third", "the next answer"]
    assert_well_formed(stored)


def test_agent_and_system_prompt_options(store: Path) -> None:
    model = ScriptedModel(["ok"])
    session = ChatSession(
        repository=FileSessionRepository(store),
        session_id="s1",
        agent_id="helper",
        model=model,
        system_prompt="Be brief.",
        out=io.StringIO(),
    )
    assert chat_loop(session, io.StringIO("hi\n/quit\n"), interactive=False) == 0
    assert model.calls[0].system_prompt == "Be brief."
    assert [text_of(m) for m in stored_messages(store, "s1", "helper")] == ["hi", "ok"]
