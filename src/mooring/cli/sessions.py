"""``mooring sessions ...``: list, show, export/import, delete, fork, copy and verify sessions.

Every verb goes through ``open_repository(url)`` and the :class:`SessionRepository` contract
(derived operations come from :mod:`mooring.session.ops`), so it works on every backend.
Each command runs in one event loop and closes its repositories before returning.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from mooring._sync import run_sync
from mooring.cli import _verify
from mooring.cli._output import UsageError, console, conversation_text, emit_json, is_tty, message_json
from mooring.cli._pager import paged
from mooring.cli._stores import require_existing
from mooring.errors import CorruptRecordError, MooringError, SessionNotFoundError
from mooring.session import export, ops
from mooring.session.records import MessageRecord
from mooring.session.repository import SessionRepository
from mooring.session.url import default_store_url, open_repository
from mooring.types import text_of

Handler = Callable[[argparse.Namespace], int]


def _store(url: str | None) -> str:
    return url or default_store_url()


def _existing_store(url: str | None) -> str:
    """The store URL of a command that only reads it (or writes only what is in it): a local
    store named by ``--store`` or ``$MOORING_STORE`` must exist, so a typo is an error rather
    than a new empty store. The implicit default directory is created as usual."""
    resolved = _store(url)
    if url or os.environ.get("MOORING_STORE"):
        require_existing(resolved)
    return resolved


def _existing_url(url: str) -> str:
    require_existing(url)
    return url


def _run(coro_factory: Callable[..., Awaitable[int]], *urls: str) -> int:
    """Open the stores, run the command's coroutine in one event loop, close the stores."""

    async def main() -> int:
        repositories = [open_repository(u) for u in urls]
        try:
            return await coro_factory(*repositories)
        finally:
            for repository in repositories:
                await repository.close()

    return run_sync(main())


# -- list -------------------------------------------------------------------------------------


async def _session_summary(repository: SessionRepository, record: Any) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "session_id": record.session_id,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "agents": [],
        "messages": 0,
        "error": None,
    }
    try:
        agents = await repository.list_agents(record.session_id)
        summary["agents"] = agents
        updated: list[str] = []
        for agent_id in agents:
            agent = await repository.read_agent(record.session_id, agent_id)
            hint = agent.next_message_id if agent is not None and agent.next_message_id else None
            summary["messages"] += await repository.message_head(record.session_id, agent_id, hint=hint)
            if agent is not None and agent.updated_at:
                updated.append(agent.updated_at)
        if updated:
            summary["updated_at"] = max(updated)
    except (CorruptRecordError, SessionNotFoundError) as exc:
        summary["error"] = " ".join(str(exc).split())
    return summary


def cmd_list(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")

    async def body(repository: SessionRepository) -> int:
        records: list[Any] = []
        cursor: str | None = None
        more = False
        while len(records) < args.limit:
            page = await repository.list_sessions(cursor=cursor, limit=min(args.limit - len(records), 500))
            records.extend(page.sessions)
            cursor = page.next_cursor
            if cursor is None:
                break
        more = cursor is not None
        summaries = [await _session_summary(repository, r) for r in records]
        if args.json:
            emit_json({"store": repository.describe(), "sessions": summaries, "more": more})
            return 0
        out = console()
        if not summaries:
            out.print(f"no sessions in {repository.describe()}")
            return 0
        table = Table(title=f"sessions in {repository.describe()}", title_justify="left")
        for column in ("session", "agents", "messages", "last update", "created"):
            table.add_column(column, overflow="fold")
        for s in summaries:
            agents = ", ".join(s["agents"]) if s["error"] is None else Text("unreadable: " + s["error"], style="red")
            table.add_row(s["session_id"], agents, str(s["messages"]), _when(s["updated_at"]), _when(s["created_at"]))
        out.print(table)
        if more:
            out.print(f"(more sessions exist; raise --limit above {args.limit} to see them)")
        return 0

    return _run(body, _existing_store(args.store))


def _when(stamp: str) -> str:
    """An ISO timestamp shortened for a table (``2025-01-31 14:05:09``); unparsable ones as they are."""
    try:
        return datetime.fromisoformat(stamp).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError):
        return stamp


# -- show -------------------------------------------------------------------------------------


def _window(head: int, args: argparse.Namespace) -> tuple[int, int]:
    """The ``[start, end)`` message ids ``--tail`` / ``--limit`` pick out of ``head`` messages."""
    if args.tail is not None:
        return max(head - args.tail, 0), head
    if args.limit is not None:
        return 0, min(args.limit, head)
    return 0, head


def cmd_show(args: argparse.Namespace) -> int:
    for option in ("tail", "limit"):
        if getattr(args, option) is not None and getattr(args, option) < 0:
            raise UsageError(f"--{option} must be 0 or more")

    async def body(repository: SessionRepository) -> int:
        session = await repository.read_session(args.session_id)
        if session is None:
            raise SessionNotFoundError(f"session {args.session_id!r} does not exist in {repository.describe()}")
        agent_ids = await repository.list_agents(args.session_id)
        if args.agent is not None:
            if args.agent not in agent_ids:
                raise SessionNotFoundError(f"agent {args.agent!r} does not exist in session {args.session_id!r}")
            agent_ids = [args.agent]
        agents: list[dict[str, Any]] = []
        conversations: list[list[MessageRecord]] = []
        for agent_id in agent_ids:
            record = await repository.read_agent(args.session_id, agent_id)
            hint = record.next_message_id if record is not None and record.next_message_id else None
            head = await repository.message_head(args.session_id, agent_id, hint=hint)
            start, end = _window(head, args)
            messages = await repository.read_messages(args.session_id, agent_id, start, end)
            agents.append(
                {
                    "agent_id": agent_id,
                    "created_at": record.created_at if record else None,
                    "updated_at": record.updated_at if record else None,
                    "state": record.state if record else {},
                    "conversation_manager_state": record.conversation_manager_state if record else {},
                    "message_head": head,
                    "messages": [
                        message_json(
                            m.message_id,
                            m.to_message(),
                            redacted=m.redact_message is not None,
                            created_at=m.created_at,
                        )
                        for m in messages
                    ],
                }
            )
            conversations.append(messages)
        if args.json:
            emit_json(
                {
                    "store": repository.describe(),
                    "session_id": session.session_id,
                    "created_at": session.created_at,
                    "updated_at": session.updated_at,
                    "agents": agents,
                }
            )
            return 0

        def render(out: Console) -> None:
            out.print(Text(f"session {session.session_id}", style="bold"), f"(created {session.created_at})")
            if not agents:
                out.print("(no agents)")
            for agent, records in zip(agents, conversations, strict=True):
                head = agent["message_head"]
                out.rule(f"agent {agent['agent_id']} · {head} messages", align="left")
                if agent["state"]:
                    out.print(Text("state: ", style="dim") + Text(_json_line(agent["state"])))
                _print_context(out, agent["conversation_manager_state"])
                start, end = _window(head, args)
                if end - start < head:
                    shown = f"messages {start}..{end - 1}" if end > start else "no messages"
                    out.print(Text(f"(showing {shown} of {head})", style="dim"))
                out.print(
                    conversation_text((r.message_id, r.to_message(), r.redact_message is not None) for r in records),
                    end="",
                )

        paged(render)
        return 0

    return _run(body, _existing_store(args.store))


def _print_context(out: Console, cm_state: dict[str, Any]) -> None:
    """What the conversation manager keeps in front of the stored window (its summary, pins)."""
    removed, summary = cm_state.get("removed_message_count"), cm_state.get("summary_message")
    if isinstance(removed, int) and removed > 0:
        pins = f", after {len(cm_state['pinned_messages'])} pinned" if cm_state.get("pinned_messages") else ""
        rest = ", and a summary of the rest" if isinstance(summary, dict) else ""
        out.print(Text(f"(the model sees messages {removed}.. of these{pins}{rest})", style="dim"))
    if isinstance(summary, dict):
        out.print(Text("summary: ", style="dim") + Text(text_of(summary)))


def _json_line(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


# -- export / import --------------------------------------------------------------------------


@contextmanager
def _atomic_output(path: str) -> Iterator[TextIO]:
    """Write ``path`` through a temp file renamed on success, so a failed export leaves no
    half file behind (and never clobbers an existing one with a partial)."""
    target = Path(path)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or Path("."))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def cmd_export(args: argparse.Namespace) -> int:
    if args.json and args.output in (None, "-"):
        raise UsageError("--json needs -o FILE (without it the export itself goes to stdout)")

    async def body(repository: SessionRepository) -> int:
        if args.output in (None, "-"):
            summary = await export.export_session(repository, args.session_id, sys.stdout.write)
            sys.stdout.flush()
            return 0
        with _atomic_output(args.output) as handle:
            summary = await export.export_session(repository, args.session_id, handle.write)
        if args.json:
            emit_json({**summary.to_dict(), "output": args.output})
        else:
            console().print(
                f"exported session {summary.session_id}: {summary.agents} agent(s), {summary.messages} message(s), "
                f"{summary.multi_agents} multi-agent record(s) to {args.output}"
            )
        return 0

    return _run(body, _existing_store(args.store))


def _report_copy(args: argparse.Namespace, report: ops.CopyReport, headline: str) -> int:
    if args.json:
        emit_json(report.to_dict())
    else:
        console().print(f"{headline}: {report.agents} agent(s), {report.messages_copied} message(s)")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    if args.file == "-":
        snapshot = export.read_export(sys.stdin, "<stdin>")
    else:
        with open(args.file, encoding="utf-8") as handle:
            snapshot = export.read_export(handle, args.file)

    async def body(repository: SessionRepository) -> int:
        report = await export.import_session(repository, snapshot, target_id=args.as_id, replace=args.replace)
        return _report_copy(args, report, f"imported session {report.target_id} into {repository.describe()}")

    return _run(body, _store(args.store))


# -- delete / fork ----------------------------------------------------------------------------


def cmd_delete(args: argparse.Namespace) -> int:
    async def body(repository: SessionRepository) -> int:
        if await repository.read_session(args.session_id) is None:
            raise SessionNotFoundError(f"session {args.session_id!r} does not exist in {repository.describe()}")
        if not args.yes:
            if not is_tty(sys.stdin):
                raise UsageError(
                    f"refusing to delete session {args.session_id!r} without confirmation: stdin is not a "
                    "terminal; pass --yes"
                )
            messages = await ops.count_messages(repository, args.session_id)
            sys.stderr.write(
                f"Delete session {args.session_id} ({messages} messages) from {repository.describe()}? "
                "This cannot be undone. [y/N] "
            )
            sys.stderr.flush()
            answer = sys.stdin.readline().strip().lower()
            if answer not in ("y", "yes"):
                sys.stderr.write("not deleted\n")
                return 1
        deleted = await repository.delete_session(args.session_id)
        if args.json:
            emit_json({"session_id": args.session_id, "deleted": deleted})
        else:
            console().print(f"deleted session {args.session_id}")
        return 0

    return _run(body, _existing_store(args.store))


def cmd_fork(args: argparse.Namespace) -> int:
    async def body(repository: SessionRepository) -> int:
        report = await ops.fork_session(repository, args.session_id, args.new_id)
        return _report_copy(args, report, f"forked session {args.session_id} into {args.new_id}")

    return _run(body, _existing_store(args.store))


# -- copy -------------------------------------------------------------------------------------


def cmd_copy(args: argparse.Namespace) -> int:
    if args.source == args.target:
        raise UsageError("--from and --to name the same store; use `mooring sessions fork` to copy within a store")

    async def body(source: SessionRepository, target: SessionRepository) -> int:
        results = await _copy_sessions(source, target, await _sessions_to_copy(source, args.session))
        failed = sum(1 for r in results if r["error"] is not None)
        copied = sum(r["messages_copied"] for r in results)
        present = sum(r["messages_present"] for r in results)
        if args.json:
            emit_json(
                {
                    "from": source.describe(),
                    "to": target.describe(),
                    "sessions": results,
                    "messages_copied": copied,
                    "messages_present": present,
                    "failed": failed,
                }
            )
        else:
            out = console()
            out.print(_copy_table(f"{source.describe()} → {target.describe()}", results))
            out.print(f"{len(results)} session(s), {copied} message(s) copied, {present} already present")
        if failed:
            raise _Failed(f"{failed} of {len(results)} session(s) could not be copied (see above); re-run to resume")
        return 0

    return _run(body, _existing_url(args.source), args.target)


async def _sessions_to_copy(source: SessionRepository, session_id: str | None) -> list[str]:
    """The one session asked for (which must exist), else every session in the store."""
    if session_id is not None:
        if await source.read_session(session_id) is None:
            raise SessionNotFoundError(f"session {session_id!r} does not exist in {source.describe()}")
        return [session_id]
    return await ops.all_session_ids(source)


async def _copy_sessions(
    source: SessionRepository, target: SessionRepository, session_ids: list[str]
) -> list[dict[str, Any]]:
    """Copy each session under a progress bar (on a terminal); a failure is recorded, not raised."""
    totals = {sid: await ops.count_messages(source, sid) for sid in session_ids}
    results: list[dict[str, Any]] = []
    err = console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("messages"),
        TimeRemainingColumn(),
        console=err,
        disable=not err.is_terminal,
    )
    with progress:
        task = progress.add_task("copying", total=sum(totals.values()))
        for session_id in session_ids:
            progress.update(task, description=f"copying {session_id}")
            done = 0

            def advance(count: int) -> None:
                nonlocal done
                done += count
                progress.advance(task, count)

            try:
                report = await ops.copy_session(source, session_id, target, on_messages=advance)
                results.append({**report.to_dict(), "error": None})
            except MooringError as exc:
                # One broken session must not stop the others; a re-run resumes it.
                progress.advance(task, max(totals[session_id] - done, 0))
                results.append(
                    {
                        **ops.CopyReport(session_id=session_id, target_id=session_id).to_dict(),
                        "error": " ".join(str(exc).split()),
                    }
                )
    return results


def _copy_table(title: str, results: list[dict[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("session", "agents", "copied", "already there", "result"):
        table.add_column(column, overflow="fold")
    for r in results:
        if r["error"] is not None:
            outcome = Text("failed: " + r["error"], style="red")
        elif r["messages_copied"] or r["agent_records_written"] or r["created"] or r["multi_agents_written"]:
            outcome = Text("copied", style="green")
        else:
            outcome = Text("up to date", style="dim")
        table.add_row(r["session_id"], str(r["agents"]), str(r["messages_copied"]), str(r["messages_present"]), outcome)
    return table


class _Failed(MooringError):
    """The command ran to the end but some of its work failed (already reported)."""


# -- verify -----------------------------------------------------------------------------------


def cmd_verify(args: argparse.Namespace) -> int:
    return _run(lambda repository: _verify.run(repository, args), _existing_store(args.store))


# -- parser -----------------------------------------------------------------------------------


def add_parser(commands: Any, common: argparse.ArgumentParser, make: Callable[..., argparse.ArgumentParser]) -> None:
    """Register ``mooring sessions <verb>``."""
    group = commands.add_parser(
        "sessions",
        parents=[common],
        help="inspect and manage stored sessions",
        description="Inspect and manage the sessions in a store (any backend, by URL).",
        epilog="examples:\n  mooring sessions list\n  mooring sessions show user-42\n"
        "  mooring sessions copy --from ./sessions --to sqlite:///sessions.db",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = group.add_subparsers(dest="verb", metavar="VERB", parser_class=make)
    group.set_defaults(handler=lambda args: _usage(group))

    store = argparse.ArgumentParser(add_help=False)
    store.add_argument(
        "--store", metavar="URL", help="session store URL (default: $MOORING_STORE or the user data directory)"
    )
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="machine-readable output (see mooring.cli._output)")

    def verb(name: str, help: str, example: str, handler: Handler, *parents: argparse.ArgumentParser) -> Any:
        parser = verbs.add_parser(
            name,
            parents=[common, *parents],
            help=help,
            description=help[0].upper() + help[1:] + ".",
            epilog="example:\n  " + example,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.set_defaults(handler=handler)
        return parser

    p = verb("list", "list sessions, newest first", "mooring sessions list --limit 20 --json", cmd_list, store, as_json)
    p.add_argument("--limit", type=int, default=100, metavar="N", help="show at most N sessions (default 100)")

    p = verb(
        "show",
        "show a session's conversation, tool calls included",
        "mooring sessions show user-42 --tail 20    (on a terminal, long output goes through $PAGER)",
        cmd_show,
        store,
        as_json,
    )
    p.add_argument("session_id", metavar="ID")
    p.add_argument("--agent", metavar="ID", help="only this agent")
    window = p.add_mutually_exclusive_group()
    window.add_argument("--tail", type=int, metavar="N", help="only the last N messages of each agent")
    window.add_argument("--limit", type=int, metavar="N", help="only the first N messages of each agent")
    window.add_argument(
        "--all",
        action="store_true",
        help="every stored message, those a conversation manager trimmed or summarized included (the default)",
    )

    p = verb(
        "export",
        "export a session as versioned JSON Lines",
        "mooring sessions export user-42 -o user-42.jsonl",
        cmd_export,
        store,
        as_json,
    )
    p.add_argument("session_id", metavar="ID")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default: stdout)")

    p = verb(
        "import",
        "import a session exported with `sessions export`",
        "mooring sessions import user-42.jsonl --store sqlite:///s.db",
        cmd_import,
        store,
        as_json,
    )
    p.add_argument("file", metavar="FILE", help="the export file, or - for stdin")
    p.add_argument("--replace", action="store_true", help="overwrite an existing session with the same id")
    p.add_argument("--as", dest="as_id", metavar="ID", help="import under another session id")

    p = verb(
        "delete",
        "delete a session and everything in it",
        "mooring sessions delete user-42 --yes",
        cmd_delete,
        store,
        as_json,
    )
    p.add_argument("session_id", metavar="ID")
    p.add_argument(
        "--yes", action="store_true", help="do not ask for confirmation (required when stdin is not a terminal)"
    )

    p = verb(
        "fork",
        "copy a session to a new id in the same store",
        "mooring sessions fork user-42 user-42-experiment",
        cmd_fork,
        store,
        as_json,
    )
    p.add_argument("session_id", metavar="ID")
    p.add_argument("new_id", metavar="NEW_ID")

    p = verb(
        "copy",
        "copy sessions between two stores (resumable, idempotent)",
        "mooring sessions copy --from ./sessions --to sqlite:///sessions.db",
        cmd_copy,
        as_json,
    )
    p.add_argument("--from", dest="source", metavar="URL", required=True, help="store to read")
    p.add_argument("--to", dest="target", metavar="URL", required=True, help="store to write")
    p.add_argument("--session", metavar="ID", help="copy only this session (default: all)")

    p = verb(
        "verify",
        "check every stored record and report problems with their location",
        "mooring sessions verify --store ./sessions --repair",
        cmd_verify,
        store,
        as_json,
    )
    _verify.add_arguments(p)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2
