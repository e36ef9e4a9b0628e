"""The seed scenario: an agent whose conversation survives the end of the process.

Shows: ``FileSessionManager`` persisting every message and ``agent.state`` automatically,
with no save or load call. Run it twice; the second run starts with the first run's
conversation already loaded and answers "What did I just ask you?" from it.

Run (offline, no credentials)::

    python examples/seed_scenario.py            # first run: a fresh session
    python examples/seed_scenario.py            # second run: the history is restored

``--storage-dir DIR`` picks where the session is stored (default ``./sessions``).
"""

from __future__ import annotations

import argparse

from mooring import Agent, tool
from mooring.session import FileSessionManager


@tool
def word_count(text: str) -> int:
    """Count the words in a text.

    Args:
        text: the text whose words are counted
    """
    return len(text.split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage-dir", default="./sessions")
    args = parser.parse_args()

    agent = Agent(
        model="offline",
        agent_id="assistant",
        tools=[word_count],
        callback_handler=None,
        session_manager=FileSessionManager(session_id="user-abc-123", storage_dir=args.storage_dir),
    )
    runs = int(agent.state.get("runs") or 0) + 1
    agent.state.set("runs", runs)
    print(f"run {runs}: restored {len(agent.messages)} messages from {args.storage_dir}")
    prompts = ["What did I just ask you?", "What's the capital of France?", 'Use word_count on "the quick brown fox"']
    for prompt in prompts:
        print(f"> {prompt}")
        print(f"  {agent(prompt)}")
    print(f"run {runs}: the session now holds {len(agent.messages)} messages; run me again to see them restored")


if __name__ == "__main__":
    main()
