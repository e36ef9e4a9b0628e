"""A long, tool-heavy conversation kept inside a token budget by summarizing, without losing history.

Shows:

- ``SummarizingConversationManager(max_context_tokens=...)``: before every model call the
  context is counted (the model's reported input tokens plus an estimate for what was added)
  and, when it is over budget, the oldest part is replaced by a summary;
- oversized tool results are truncated in what the model is sent, while the stored
  messages keep them whole;
- ``pin_first_messages`` keeps the opening task statement in every window;
- every original message stays in the store (``mooring sessions show --all`` lists them), and
  a restarted agent resumes with the same summary and window.

Run (offline, no credentials; writes ./long-conversation-store)::

    python examples/long_conversation.py --turns 60
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mooring import Agent, SummarizingConversationManager, tool
from mooring.session import FileSessionManager
from mooring.types import text_of


@tool
def read_log(day: int) -> str:
    """Read the server log of one day (long output).

    Args:
        day: the day number
    """
    return "\n".join(f"day {day} line {i}: request served in {i % 17} ms" for i in range(400))


def build(store: Path, sizes: list[int] | None = None) -> Agent:
    def watch(**event: object) -> None:
        # Every raw model event reaches the callback handler; the metadata one carries the
        # provider's count of the input tokens of that call.
        raw = event.get("event")
        if sizes is not None and isinstance(raw, dict) and "metadata" in raw:
            sizes.append(raw["metadata"]["usage"]["inputTokens"])

    return Agent(
        model="offline",
        agent_id="analyst",
        tools=[read_log],
        conversation_manager=SummarizingConversationManager(
            max_context_tokens=6000, preserve_recent_messages=6, pin_first_messages=2
        ),
        session_manager=FileSessionManager(session_id="log-review", storage_dir=store),
        callback_handler=watch,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=60)
    parser.add_argument("--store", type=Path, default=Path("long-conversation-store"))
    args = parser.parse_args()

    sizes: list[int] = []
    agent = build(args.store, sizes)
    if not agent.messages:
        agent("Task: review the server logs day by day and report slow requests.")
    for day in range(args.turns):
        agent(f"Use read_log on day {day}")
    manager = agent.conversation_manager
    assert isinstance(manager, SummarizingConversationManager)

    messages_dir = args.store / "session_log-review" / "agents" / "agent_analyst" / "messages"
    stored = len(list(messages_dir.glob("message_*.json")))
    print(f"stored messages: {stored} (none deleted)")
    print(f"the model sees: {len(agent.messages)} messages, from stored message {manager.removed_message_count} on")
    print(f"pinned opening: {text_of(agent.messages[0])!r}")
    summary = manager.summary_message
    print(f"summary: {text_of(summary)[:100]!r}..." if summary else "summary: none yet (try more --turns)")
    print(f"model calls: {len(sizes)}, largest input the model reported: {max(sizes)} tokens (budget 6000)")

    again = build(args.store)  # a restart: the same summary and window come back
    same = json.dumps(again.messages, sort_keys=True) == json.dumps(agent.messages, sort_keys=True)
    print(f"after a restart the model would see the same context: {same}")


if __name__ == "__main__":
    main()
