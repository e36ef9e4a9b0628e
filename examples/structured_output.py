"""Structured output and direct tool calls, stored in a session and restored by a new Agent.

Shows:

- ``agent.structured_output(Model, prompt)`` returning a validated pydantic instance (the
  offline model fills the schema from the prompt), and ``agent(prompt,
  structured_output_model=Model)`` with ``result.structured_output``;
- a retry: a scripted first answer fails validation, the error goes back to the model as an
  error tool result, and the second answer validates;
- ``agent.tool.word_count(text=...)`` running a tool directly and recording the call;
- a second Agent on the same session that restores all of it and continues.

Run (offline, no credentials; the session is stored under ./structured-sessions)::

    python examples/structured_output.py
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from mooring import Agent, tool
from mooring.models import Model, ScriptedModel, tool_call
from mooring.session import FileSessionManager

STORE = Path("structured-sessions")


class Weather(BaseModel):
    """The weather in one city."""

    city: str
    celsius: float


@tool
def word_count(text: str) -> int:
    """Count the words in a text.

    Args:
        text: the text to count
    """
    return len(text.split())


def agent(model: Model | None = None) -> Agent:
    return Agent(
        model=model,
        agent_id="assistant",
        tools=[word_count],
        session_manager=FileSessionManager("structured-demo", storage_dir=STORE),
        callback_handler=None,
    )


def main() -> None:
    first = agent()  # the offline model
    weather = first.structured_output(Weather, 'The weather in "Paris" is 21.5 degrees')
    print(f"offline model: {weather!r}")

    # A scripted model whose first answer lacks a field: the validation error is sent back.
    scripted = ScriptedModel(
        [
            [tool_call("Weather", {"city": "Oslo"})],
            [tool_call("Weather", {"city": "Oslo", "celsius": -2})],
        ]
    )
    first.model = scripted
    result = first("And in Oslo?", structured_output_model=Weather)
    error = scripted.calls[1].messages[-1]["content"][0]["toolResult"]["content"][0]["text"]
    print(f"after one retry: {result.structured_output!r}")
    print(f"the model was told: {error}")

    counted = first.tool.word_count(text="the quick brown fox")
    print(f"direct tool call: {counted['content']} ({len(first.messages)} messages in the conversation)")

    second = agent(ScriptedModel(["Four words, and it is -2 degrees in Oslo."]))
    print(f"a new Agent restored {len(second.messages)} messages")
    print(f"it continues: {second('Summarize.')}")


if __name__ == "__main__":
    main()
