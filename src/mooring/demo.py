"""The offline demo: two separate processes continue one conversation through the file store.

It keeps to its own directory (``./mooring-demo``) and session id (``demo-user-abc-123``), so
it never touches the sessions of the README's examples (``./sessions``, ``user-abc-123``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SESSION_ID = "demo-user-abc-123"
DEFAULT_STORAGE_DIR = "./mooring-demo"
AGENT_ID = "assistant"


def word_count(text: str) -> int:
    """Count the words in a text.

    Args:
        text: the text whose words are counted
    """
    return len(text.split())


def run_step(step: str, storage_dir: Path) -> None:
    """One process's part of the scenario (run as ``python -m mooring.demo STEP DIR``)."""
    from mooring import Agent, tool
    from mooring.session import FileSessionManager

    agent = Agent(
        model="offline",
        agent_id=AGENT_ID,
        tools=[tool(word_count)],
        session_manager=FileSessionManager(session_id=SESSION_ID, storage_dir=storage_dir),
    )
    prompts = {
        "first": ["What's the capital of France?"],
        "second": ["What did I just ask you?", 'Use word_count on "the quick brown fox jumps"'],
    }[step]
    label = "process 1" if step == "first" else "process 2"
    if step == "second":
        print(f"[{label}, pid {os.getpid()}] restored {len(agent.messages)} messages from disk")
    for prompt in prompts:
        print(f"[{label}, pid {os.getpid()}] Prompt: {prompt}")
        agent(prompt)
        print()


def tree(root: Path) -> list[str]:
    """A `tree`-like listing of ``root`` (hidden lock files left out)."""
    lines = [f"{root}/"]

    def walk(directory: Path, prefix: str) -> None:
        entries = sorted(
            (p for p in directory.iterdir() if not p.name.startswith(".")),
            key=lambda p: (p.is_file(), _natural(p.name)),
        )
        for index, entry in enumerate(entries):
            last = index == len(entries) - 1
            lines.append(f"{prefix}{'└── ' if last else '├── '}{entry.name}{'/' if entry.is_dir() else ''}")
            if entry.is_dir():
                walk(entry, prefix + ("    " if last else "│   "))

    walk(root, "")
    return lines


def _natural(name: str) -> tuple[str, int]:
    stem, _, rest = name.rpartition("_")
    number = rest.split(".")[0]
    return (stem, int(number)) if number.isdigit() else (name, -1)


def run_demo(storage_dir: str | os.PathLike[str] = DEFAULT_STORAGE_DIR, fresh: bool = True) -> int:
    """Run the two-process scenario and print the tree it left behind."""
    import asyncio

    from mooring.session import FileSessionRepository

    root = Path(storage_dir)
    if fresh:
        asyncio.run(FileSessionRepository(root).delete_session(SESSION_ID))
    print(f"mooring demo: two processes share session {SESSION_ID!r} in {root} (offline model, no network)\n")
    for step in ("first", "second"):
        completed = subprocess.run([sys.executable, "-m", "mooring.demo", step, str(root)], check=False)
        if completed.returncode != 0:
            print(f"demo step {step!r} failed with exit code {completed.returncode}", file=sys.stderr)
            return 1
    print("What the session store holds now:")
    print("\n".join(tree(root / f"session_{SESSION_ID}")))
    print(
        f"\nThe demo session is stored in {root.resolve()} (session {SESSION_ID}); look at it with:\n"
        f"  mooring sessions show {SESSION_ID} --store {root}"
    )
    return 0


if __name__ == "__main__":
    run_step(sys.argv[1], Path(sys.argv[2]))
