"""The command line: inspect stored sessions with ``mooring sessions list/show/export``.

Shows: an agent stores a short conversation, then the ``mooring`` command (run here as
``python -m mooring``, the same program as the installed ``mooring`` script) lists the
store's sessions, shows one, exports it as JSON Lines, and reads ``--json`` output the way
a script would. The shell equivalent::

    mooring sessions list --store ./cli-sessions
    mooring sessions show cli-demo --store ./cli-sessions
    mooring sessions export cli-demo --store ./cli-sessions -o cli-demo.jsonl

Run (offline, no credentials)::

    python examples/cli_sessions.py          # uses ./cli-sessions and writes ./cli-demo.jsonl
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mooring import Agent, tool
from mooring.session import FileSessionManager

STORE = "./cli-sessions"
SESSION_ID = "cli-demo"


@tool
def word_count(text: str) -> int:
    """Count the words in a text.

    Args:
        text: the text whose words are counted
    """
    return len(text.split())


def mooring(*args: str) -> str:
    """Run ``mooring ARGS...`` and return its standard output; fail loudly on an error."""
    command = [sys.executable, "-m", "mooring", *args]
    print(f"$ mooring {' '.join(args)}")
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"mooring {' '.join(args)} failed ({completed.returncode}): {completed.stderr.strip()}")
    return completed.stdout


def main() -> None:
    agent = Agent(
        model="offline",
        agent_id="assistant",
        tools=[word_count],
        callback_handler=None,
        session_manager=FileSessionManager(SESSION_ID, storage_dir=STORE),
    )
    agent("What's the capital of Spain?")
    agent('Use word_count on "one two three"')

    print(mooring("sessions", "list", "--store", STORE))
    print(mooring("sessions", "show", SESSION_ID, "--store", STORE))
    export = Path("cli-demo.jsonl")
    mooring("sessions", "export", SESSION_ID, "--store", STORE, "-o", str(export))
    lines = export.read_text(encoding="utf-8").splitlines()
    print(f"{export}: {len(lines)} JSON lines; the first is the header {json.loads(lines[0])}\n")

    listing = json.loads(mooring("sessions", "list", "--store", STORE, "--json"))
    for session in listing["sessions"]:
        print(f"--json: session {session['session_id']} has {session['messages']} messages ({session['agents']})")


if __name__ == "__main__":
    main()
