"""``mooring sessions verify [--repair]``: the arguments and the output of the command.

The checks and repairs are :mod:`mooring.session.verify`; on a file store the command adds
the file store's inspector (:mod:`mooring.session.backends.file.repair`), so temp files,
unparsable records, symlinks, hard links and gaps are found too; a lost message is replaced
by a placeholder at its id. Without ``--repair`` each problem says what a repair would do.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.text import Text

from mooring.cli._output import console, emit_json
from mooring.session.backends.file.repair import inspector_for
from mooring.session.repository import SessionRepository
from mooring.session.verify import verify_store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repair",
        action="store_true",
        help="move unloadable records aside (quarantine), put a placeholder at each lost message's id, "
        "fix head hints; never deletes",
    )


async def run(repository: SessionRepository, args: argparse.Namespace) -> int:
    report = await verify_store(repository, repair=args.repair, inspector=inspector_for(repository))
    result = report.to_dict()
    if args.json:
        emit_json(result)
        return 0 if report.ok else 1
    out = console()
    out.print(
        f"checked {result['sessions']} session(s), {result['agents']} agent(s), {result['messages']} message(s) "
        f"in {result['store']}"
    )
    _problem_table(out, "problems found", result["problems"])
    if result["repairs"]:
        out.print(Text("repairs:", style="bold"))
        for r in result["repairs"]:
            moved = f" -> {r['to']}" if r["to"] else ""
            out.print(Text(f"  {r['action']:<12} {r['location']}{moved}"), soft_wrap=True)
            out.print(Text(f"               {r['detail']}", style="dim"), soft_wrap=True)
    if result["remaining"] is not None:
        _problem_table(out, "after repair", result["remaining"])
    out.print(Text("ok", style="green") if report.ok else Text("errors remain", style="red bold"))
    return 0 if report.ok else 1


def _problem_table(out: Any, title: str, problems: list[dict[str, Any]]) -> None:
    # One entry per problem, location on its own line: paths are long and must stay whole.
    if not problems:
        out.print(f"{title}: none")
        return
    out.print(Text(f"{title}:", style="bold"))
    for p in problems:
        line = Text(f"  {p['severity']:<7}", style="red" if p["severity"] == "error" else "yellow")
        line.append(f" {p['kind']}", style="bold")
        scope = [f"session {p['session_id']}"] if p["session_id"] else ["store"]
        if p["agent_id"] is not None:
            scope.append(f"agent {p['agent_id']}")
        if p["message_id"] is not None:
            scope.append(f"message {p['message_id']}")
        line.append(f"  ({', '.join(scope)})")
        out.print(line, soft_wrap=True)
        out.print(Text(f"           at {p['location']}", style="dim"), soft_wrap=True)
        out.print(Text(f"           {p['detail']}"), soft_wrap=True)
        if p.get("fix") and title == "problems found":
            out.print(Text(f"           repair would: {p['fix']}", style="cyan"), soft_wrap=True)
