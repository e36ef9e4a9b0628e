"""Coming from Strands: the seed program runs on mooring with only its import lines changed.

The program is the two-agent session example users start from (a Bedrock model id, an
``agent_id``, a ``FileSessionManager`` on ``./sessions``). It runs in a new process with the
Strands import paths swapped for mooring's; boto3 talks to the local Bedrock wire server
(``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``), so the real client, signing and event-stream decoding run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from provider_wire import WireServer, load

SEED_PROGRAM = textwrap.dedent(
    """
    from strands import Agent
    from strands.session.file_session_manager import FileSessionManager

    SESSION_ID = "user-abc-123"
    STORAGE_DIR = "./sessions"

    first = Agent(
        model="global.anthropic.claude-haiku-4-5-20251001-v1:0",
        agent_id="assistant",
        session_manager=FileSessionManager(session_id=SESSION_ID, storage_dir=STORAGE_DIR),
    )
    first("What's the capital of France?")
    print()

    second = Agent(
        model="global.anthropic.claude-haiku-4-5-20251001-v1:0",
        agent_id="assistant",
        session_manager=FileSessionManager(session_id=SESSION_ID, storage_dir=STORAGE_DIR),
    )
    second("What did I just ask you?")
    print()
    """
)


def _ported(program: str) -> str:
    """The Strands program with its import lines, and nothing else, pointed at mooring."""
    lines = []
    for line in program.splitlines():
        if line.startswith(("from strands", "import strands")):
            line = line.replace("strands", "mooring", 1)
        lines.append(line)
    return "\n".join(lines)


def test_the_seed_program_runs_with_only_its_imports_changed(
    wire: WireServer, aws_credentials: None, tmp_path: Path
) -> None:
    ported = _ported(SEED_PROGRAM)
    changed = [(a, b) for a, b in zip(SEED_PROGRAM.splitlines(), ported.splitlines(), strict=True) if a != b]
    assert [a for a, _ in changed] == [
        "from strands import Agent",
        "from strands.session.file_session_manager import FileSessionManager",
    ]
    wire.queue(*load("bedrock", "text"), *load("bedrock", "text"))
    env = dict(os.environ, AWS_ENDPOINT_URL_BEDROCK_RUNTIME=wire.url)

    run = subprocess.run(
        [sys.executable, "-c", ported], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )

    assert run.returncode == 0, run.stderr
    assert run.stdout.strip()  # the default callback handler printed both answers
    assert len(wire.requests) == 2
    # The second agent was built from disk: its request carries the first exchange.
    sent = wire.requests[1].json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[0]["content"][0]["text"] == "What's the capital of France?"
    assert sent[2]["content"][0]["text"] == "What did I just ask you?"
    messages = tmp_path / "sessions" / "session_user-abc-123" / "agents" / "agent_assistant" / "messages"
    assert sorted(p.name for p in messages.iterdir()) == [f"message_{i}.json" for i in range(4)]


def test_the_strands_import_paths_are_the_same_classes() -> None:
    from mooring.session import FileSessionManager, RepositorySessionManager, S3SessionManager, SessionRepository
    from mooring.session.file_session_manager import FileSessionManager as FromFilePath
    from mooring.session.repository_session_manager import RepositorySessionManager as FromRepositoryPath
    from mooring.session.s3_session_manager import S3SessionManager as FromS3Path
    from mooring.session.session_repository import SessionRepository as FromRepositoryProtocolPath

    assert FromFilePath is FileSessionManager
    assert FromRepositoryPath is RepositorySessionManager
    assert FromS3Path is S3SessionManager
    assert FromRepositoryProtocolPath is SessionRepository
