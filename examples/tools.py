"""Tools: plain functions, async functions, a tool that uses ``ToolContext``, and a failing tool.

Shows:

- ``@tool`` builds the tool's JSON schema from the type hints and the docstring's ``Args:``;
- async tools work like sync ones;
- a parameter annotated ``ToolContext`` receives the calling agent (here: to write
  ``agent.state``, which is persisted with the session);
- a tool that raises becomes an error ``toolResult`` the model sees, not a crash.

Run (offline, no credentials; uses an in-memory store so nothing is written)::

    python examples/tools.py
"""

from __future__ import annotations

import asyncio

from mooring import Agent, ToolContext, tool
from mooring.session import InMemorySessionRepository, RepositorySessionManager


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: the first addend
        b: the second addend
    """
    return a + b


@tool
async def shout(text: str) -> str:
    """Upper-case a text (an async tool).

    Args:
        text: what to upper-case
    """
    await asyncio.sleep(0)
    return text.upper()


@tool
def remember(note: str, context: ToolContext) -> str:
    """Keep a note in the agent's state, which the session persists.

    Args:
        note: the note to keep
    """
    notes = list(context.agent.state.get("notes") or [])
    notes.append(note)
    context.agent.state.set("notes", notes)
    return f"remembered {len(notes)} note(s)"


@tool
def divide(a: int, b: int) -> float:
    """Divide a by b.

    Args:
        a: the dividend
        b: the divisor
    """
    return a / b


def main() -> None:
    print("the schema @tool built for add:", add.spec["inputSchema"]["json"])
    agent = Agent(
        model="offline",
        agent_id="assistant",
        tools=[add, shout, remember, divide],
        callback_handler=None,
        session_manager=RepositorySessionManager("tools-demo", InMemorySessionRepository()),
    )
    for prompt in [
        "Please add 2 and 40",
        'Shout "hello there"',
        'Remember "buy milk"',
        "Divide 1 by 0",
    ]:
        print(f"> {prompt}")
        print(f"  {agent(prompt)}")
    print("agent.state notes:", agent.state.get("notes"))
    print("the function stays callable:", add(2, 3))


if __name__ == "__main__":
    main()
