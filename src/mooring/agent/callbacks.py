"""Callback handlers: what happens with stream events during ``agent(prompt)``."""

from __future__ import annotations

import sys
from typing import Any, TextIO


class PrintingCallbackHandler:
    """Streams the answer text to stdout as it arrives (the default)."""

    def __init__(self, stream: TextIO | None = None, show_tools: bool = True) -> None:
        self._stream = stream
        self.show_tools = show_tools

    def __call__(self, **event: Any) -> None:
        out = self._stream or sys.stdout
        if "data" in event:
            out.write(event["data"])
            out.flush()
        elif "tool_use" in event and self.show_tools:
            out.write(f"\n[tool: {event['tool_use']['name']}]\n")
            out.flush()
        elif "result" in event:
            out.write("\n")
            out.flush()


def null_callback_handler(**event: Any) -> None:
    """Discards every event (``callback_handler=None``)."""
    return None
