"""``mooring chat``: an interactive conversation with streaming output, persisted as it goes.

Persistence is the ordinary :class:`RepositorySessionManager` over ``open_repository(store)``,
so a chat can be quit and resumed, and can run beside other processes on the same session.

Interrupting a reply (Ctrl-C) cancels the invocation. The Agent takes back a prompt that got
no answer and the session manager only stores a prompt once the model answered it, so nothing
half-done is left behind; the chat then reloads the conversation from the store, which also
closes a turn cut off between a tool call and its result, so memory and store agree again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
from collections.abc import AsyncGenerator, Callable, Sequence
from datetime import datetime
from typing import Any, TextIO, cast

from mooring._sync import run_sync
from mooring.agent.agent import Agent
from mooring.cli._busy import WaitAbandoned, wait_until_free
from mooring.cli._output import UsageError, console, conversation_text, error_line, is_tty
from mooring.errors import MooringError
from mooring.models import Model, resolve_model
from mooring.session.manager import RepositorySessionManager
from mooring.session.ops import fork_session, undo_last_turn
from mooring.session.repository import SessionRepository
from mooring.session.url import default_store_url, open_repository

COMMANDS_HELP = """\
/history        show the conversation so far
/state          show the agent's state and where the session is stored
/fork NEW_ID    copy this session (all agents and messages) to NEW_ID; you stay in this one
/undo           remove the last turn (your last message and the replies to it), durably
/quit           leave (Ctrl-D does the same); Ctrl-C stops a reply that is streaming,
                or stops waiting for a session another process is using"""

INTERRUPTED_NOTE = "[interrupted: the unfinished reply was discarded]"


def new_session_id() -> str:
    """A fresh, readable, collision-resistant session id (``chat-YYYYmmdd-HHMMSS-xxxxxx``)."""
    return f"chat-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


class ChatSession:
    """One chat: an Agent persisted to a repository, plus the slash commands.

    ``on_event`` sees every stream event before it is printed (tests use it to interrupt a
    reply at a chosen point).

    Example::

        chat = ChatSession(repository=open_repository("./sessions"), session_id="s1")
        chat.send("What's the capital of France?")
        chat.command("/undo")
    """

    def __init__(
        self,
        *,
        repository: SessionRepository,
        session_id: str,
        agent_id: str = "default",
        model: Model | str | None = None,
        system_prompt: str | None = None,
        tools: Sequence[Any] = (),
        out: TextIO | None = None,
        err: TextIO | None = None,
        lease_wait: float = 60.0,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.repository = repository
        self.session_id = session_id
        self.agent_id = agent_id
        self.model = resolve_model(model)
        self.model_label = model if isinstance(model, str) else os.environ.get("MOORING_MODEL") or "offline"
        if model is not None and not isinstance(model, str):
            self.model_label = type(model).__name__
        self.system_prompt = system_prompt
        self.tools = list(tools)
        self.out: TextIO = out if out is not None else sys.stdout
        self.err: TextIO = err if err is not None else sys.stderr
        self.lease_wait = lease_wait
        self.on_event = on_event
        self.existed = run_sync(repository.read_session(session_id)) is not None
        self.agent = self._build_agent()

    def _build_agent(self) -> Agent:
        manager = RepositorySessionManager(self.session_id, self.repository, lease_wait=self.lease_wait)
        return Agent(
            model=self.model,
            agent_id=self.agent_id,
            system_prompt=self.system_prompt,
            tools=self.tools,
            session_manager=manager,
            callback_handler=None,
        )

    def reload(self) -> None:
        """Rebuild the Agent from the store (the source of truth), closing any unfinished turn."""
        self.agent = self._build_agent()

    # -- replies ------------------------------------------------------------------------------

    def send(self, prompt: str) -> bool:
        """Ask one question and stream the reply; False when the reply was interrupted.

        Any failure reloads the conversation from the store before it propagates, so the
        next turn starts from exactly what was persisted.
        """
        self.wait_until_free()
        try:
            run_sync(self.reply_async(prompt))
        except (KeyboardInterrupt, asyncio.CancelledError):
            self._write(f"\n{INTERRUPTED_NOTE}\n")
            self.reload()
            return False
        except BaseException:
            self._write("\n")
            self.reload()
            raise
        return True

    def wait_until_free(self) -> None:
        """Wait (visibly, up to ``lease_wait``) while another process runs a turn on this
        session; ``WaitAbandoned`` on Ctrl-C, ``LeaseTimeoutError`` naming the holder."""
        try:
            run_sync(
                wait_until_free(self.repository, self.session_id, self.agent_id, wait=self.lease_wait, stderr=self.err)
            )
        except (KeyboardInterrupt, asyncio.CancelledError):
            raise WaitAbandoned from None

    async def reply_async(self, prompt: str) -> None:
        """Stream one reply. KeyboardInterrupt and CancelledError take the same path: the
        stream is closed right away, so the Agent's cleanup (prompt rollback, final
        AfterInvocation, lease release) runs before the exception leaves this coroutine."""
        # stream_async is an async generator; aclose() runs its cleanup now, not at GC time.
        stream = cast("AsyncGenerator[dict[str, Any], None]", self.agent.stream_async(prompt))
        try:
            async for event in stream:
                if self.on_event is not None:
                    self.on_event(event)
                self._render(event)
        finally:
            await stream.aclose()

    def _render(self, event: dict[str, Any]) -> None:
        if "data" in event:
            self._write(str(event["data"]))
        elif "tool_use" in event:
            use = event["tool_use"]
            self._write(f"\n→ tool call {use['name']} {json.dumps(use.get('input'), ensure_ascii=False)}\n")
        elif "tool_result" in event:
            result = event["tool_result"]
            texts = [str(c.get("text", c.get("json", ""))) for c in result.get("content", [])]
            self._write(f"← tool result [{result.get('status')}]: {' '.join(texts)}\n")
        elif "result" in event:
            self._write("\n")

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    # -- slash commands -----------------------------------------------------------------------

    def command(self, line: str) -> bool:
        """Run a slash command; False when the chat should end."""
        name, _, rest = line.strip().partition(" ")
        argument = rest.strip()
        if name in ("/quit", "/exit", "/q"):
            return False
        if name == "/help":
            self._write(COMMANDS_HELP + "\n")
        elif name == "/history":
            self.show_history()
        elif name == "/state":
            self._write(json.dumps(self.describe_state(), indent=2, ensure_ascii=False) + "\n")
        elif name == "/fork":
            if not argument or " " in argument:
                self._write("usage: /fork NEW_ID\n")
            else:
                self.fork(argument)
        elif name == "/undo":
            self.undo()
        else:
            self._write(f"unknown command {name}; /help lists the commands\n")
        return True

    def show_history(self) -> None:
        messages = self.agent.messages
        if not messages:
            self._write("(no messages yet)\n")
            return
        first = self.agent.conversation_manager.removed_message_count
        if first:
            self._write(f"({first} earlier messages are stored but outside the conversation window)\n")
        text = conversation_text((first + i, m, False) for i, m in enumerate(messages))
        console(self.out).print(text, end="")
        self.out.flush()

    def describe_state(self) -> dict[str, Any]:
        head = run_sync(self.repository.message_head(self.session_id, self.agent_id))
        return {
            "session_id": self.session_id,
            "agent_id": self.agent_id,
            "store": self.repository.describe(),
            "model": self.model_label,
            "message_head": head,
            "messages_in_window": len(self.agent.messages),
            "removed_message_count": self.agent.conversation_manager.removed_message_count,
            "state": self.agent.state.get(),
        }

    def fork(self, new_id: str) -> None:
        report = run_sync(fork_session(self.repository, self.session_id, new_id, lease_wait=self.lease_wait))
        self._write(
            f"forked session {self.session_id} into {new_id} ({report.messages_copied} messages); "
            f"you are still in {self.session_id}; continue the copy with: mooring chat --session {new_id}\n"
        )

    def undo(self) -> None:
        result = run_sync(undo_last_turn(self.repository, self.session_id, self.agent_id, lease_wait=self.lease_wait))
        # The manager's view (head, record version) must follow the store: rebuild from it.
        self.reload()
        if result.removed == 0:
            self._write("nothing to undo\n")
        else:
            self._write(
                f"removed the last turn: messages {result.new_head}..{result.old_head - 1} "
                f"({result.removed} messages)\n"
            )


def read_line(stdin: TextIO, interactive: bool, pending: str | None = None) -> str | None:
    """One input line, or None at end of input. A terminal gets a prompt and line editing,
    with ``pending`` (a prompt that was not answered) already typed in."""
    if interactive:
        hook = _prefill(pending)
        try:
            return input("you> ")
        except EOFError:
            return None
        finally:
            if hook is not None:
                hook(None)
    line = stdin.readline()
    return None if line == "" else line


def _prefill(text: str | None) -> Callable[[Any], None] | None:
    """Have ``input()`` start with ``text`` typed in (GNU readline); returns the hook setter."""
    if not text:
        return None
    try:
        import readline
    except ImportError:
        return None

    def insert() -> None:
        readline.insert_text(text)
        readline.redisplay()

    readline.set_pre_input_hook(insert)
    return readline.set_pre_input_hook


KEPT_NOTE = "(your message was kept: press Enter to send it again, or edit it first)"


def chat_loop(chat: ChatSession, stdin: TextIO | None = None, *, interactive: bool | None = None) -> int:
    """Read lines until ``/quit`` or end of input; each line is a prompt or a slash command.

    A prompt that got no answer (a busy session, a model error, Ctrl-C) is offered again on a
    terminal. Read from a pipe, a failed prompt ends the chat with exit code 1, since the lines
    after it were written expecting its answer.
    """
    source = stdin if stdin is not None else sys.stdin
    if interactive is None:
        interactive = is_tty(source) and source is sys.stdin
    if interactive:
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:
            pass
    pending: str | None = None
    while True:
        try:
            line = read_line(source, interactive, pending)
        except KeyboardInterrupt:
            chat.out.write("\n(Ctrl-C stops a reply; type /quit or press Ctrl-D to leave)\n")
            continue
        pending = None
        if line is None:
            if interactive:
                chat.out.write("\n")
            return 0
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            try:
                if not chat.command(text):
                    return 0
            except (MooringError, OSError, ValueError, LookupError) as exc:
                error_line(exc)  # a failed command does not end the chat
            continue
        answered = _send(chat, text)
        if answered is None and not interactive:
            return 1
        if not answered and interactive:
            pending = text
            chat.out.write(KEPT_NOTE + "\n")
            chat.out.flush()


def _send(chat: ChatSession, text: str) -> bool | None:
    """Send one prompt: True when answered, False when interrupted or not sent, None when it
    failed (reported as one line)."""
    try:
        return chat.send(text)
    except WaitAbandoned:
        chat.err.write("stopped waiting; nothing was sent and the session is unchanged\n")
        return False
    except (MooringError, OSError, ValueError, LookupError) as exc:
        error_line(exc)
        return None


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "chat",
        parents=[common],
        help="talk to an agent; the conversation is saved as it goes",
        description="Interactive chat with streaming replies, persisted to the session store. "
        "Slash commands:\n" + COMMANDS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  mooring chat\n  mooring chat --session user-42 --store sqlite:///sessions.db\n"
        "  echo 'What is the capital of France?' | mooring chat --session demo",
    )
    parser.add_argument("--session", metavar="ID", help="session to continue or create (default: a new id)")
    parser.add_argument(
        "--agent", metavar="ID", default="default", help="agent id within the session (default: default)"
    )
    parser.add_argument(
        "--model", metavar="STR", help="model string, e.g. offline or bedrock:... (default: $MOORING_MODEL or offline)"
    )
    parser.add_argument(
        "--store", metavar="URL", help="session store URL (default: $MOORING_STORE or the user data directory)"
    )
    parser.add_argument("--system", metavar="TEXT", help="system prompt")
    parser.add_argument(
        "--wait",
        metavar="SECONDS",
        type=float,
        default=60.0,
        help="how long to wait while another process runs a turn on the session (default 60)",
    )
    parser.set_defaults(handler=run_chat)


def run_chat(args: argparse.Namespace) -> int:
    if args.wait < 0:
        raise UsageError("--wait must be 0 or more seconds")
    session_id = args.session or new_session_id()
    repository = open_repository(args.store or default_store_url())
    try:
        chat = ChatSession(
            repository=repository,
            session_id=session_id,
            agent_id=args.agent,
            model=args.model,
            system_prompt=args.system,
            lease_wait=args.wait,
        )
        status = f"restored {len(chat.agent.messages)} messages" if chat.existed else "new"
        out = chat.out
        if not args.session:
            out.write(f"new session id: {session_id}\n")
        out.write(
            f"mooring chat · session {session_id} ({status}) · agent {args.agent} · model {chat.model_label} · "
            f"store {repository.describe()}\n"
        )
        out.write("Type a message; /help lists commands, /quit leaves.\n")
        out.flush()
        return chat_loop(chat)
    finally:
        run_sync(repository.close())
