"""Two processes on one session: both write turns at once, and nothing is lost.

Shows the concurrency protocol at work: two separate Python processes each run several
turns on the same (session, agent) in the file store at the same time. The invocation
lease serialises their turns, each process catches up on the other's turns before running
its own, and every append is conditional, so in the end every prompt is stored exactly
once, followed by its own answer, with dense message ids.

Run (offline, no credentials)::

    python examples/two_processes.py                  # 2 processes x 3 turns in ./sessions
    python examples/two_processes.py --turns 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys

from mooring import Agent
from mooring.session import FileSessionManager, FileSessionRepository

SESSION_ID = "shared-session"
AGENT_ID = "assistant"


def worker(name: str, turns: int, storage_dir: str) -> None:
    """One process's part: ``turns`` prompts, each naming this worker and the turn."""
    agent = Agent(
        model="offline",
        agent_id=AGENT_ID,
        callback_handler=None,
        session_manager=FileSessionManager(SESSION_ID, storage_dir=storage_dir, lease_wait=120),
    )
    for turn in range(turns):
        agent(f"{name} turn {turn}")
    print(f"[{name}, pid {os.getpid()}] done; it saw {len(agent.messages)} messages at the end")


def check(storage_dir: str, workers: list[str], turns: int) -> list[str]:
    """What a user would check: every prompt once, each answered, ids dense from 0."""
    repository = FileSessionRepository(storage_dir)
    records = asyncio.run(repository.read_messages(SESSION_ID, AGENT_ID))
    ids = [record.message_id for record in records]
    problems = [] if ids == list(range(len(ids))) else [f"message ids are not dense: {ids}"]
    prompts = []
    for index, record in enumerate(records):
        message = record.message
        if message["role"] == "user":
            text = message["content"][0].get("text", "")
            prompts.append(text)
            answer = records[index + 1].message if index + 1 < len(records) else None
            if answer is None or text not in answer["content"][0].get("text", ""):
                problems.append(f"prompt {text!r} is not followed by its own answer")
    expected = sorted(f"{name} turn {turn}" for name in workers for turn in range(turns))
    if sorted(prompts) != expected:
        problems.append(f"stored prompts {sorted(prompts)} differ from the {len(expected)} sent")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage-dir", default="./sessions")
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # set when this script runs itself
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.turns, args.storage_dir)
        return 0

    asyncio.run(FileSessionRepository(args.storage_dir).delete_session(SESSION_ID))  # start fresh
    names = ["process-A", "process-B"]
    command = [sys.executable, __file__, "--storage-dir", args.storage_dir, "--turns", str(args.turns)]
    children = [subprocess.Popen([*command, "--worker", name]) for name in names]
    codes = [child.wait() for child in children]
    if any(codes):
        print(f"a worker failed: exit codes {codes}", file=sys.stderr)
        return 1
    problems = check(args.storage_dir, names, args.turns)
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    if problems:
        return 1
    total = len(names) * args.turns
    print(f"ok: {total} turns from {len(names)} processes, all {total * 2} messages stored exactly once, in order")
    return 0


if __name__ == "__main__":
    sys.exit(main())
