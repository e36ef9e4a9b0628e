"""What an invocation returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mooring.types import Message, text_of


@dataclass(kw_only=True)
class AgentResult:
    """The outcome of one invocation. ``str(result)`` is the answer text."""

    stop_reason: str
    message: Message
    usage: dict[str, int] = field(default_factory=lambda: {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0})
    cycles: int = 1
    state: dict[str, Any] = field(default_factory=dict)
    #: The validated pydantic instance when the invocation asked for ``structured_output_model``.
    structured_output: Any = None

    @property
    def text(self) -> str:
        return text_of(self.message)

    def __str__(self) -> str:
        return self.text
