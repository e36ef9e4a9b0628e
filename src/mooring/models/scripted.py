"""``ScriptedModel``: a public test double that replays given responses."""

from __future__ import annotations

import copy
import itertools
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mooring.models.base import message_to_events
from mooring.types import ContentBlock, Message, StreamEvent

_ids = itertools.count(1)


@dataclass(kw_only=True)
class ModelCall:
    """What the model was sent on one call."""

    messages: list[Message]
    tool_specs: list[dict[str, Any]]
    system_prompt: str | None
    tool_choice: dict[str, Any] | None = None


def tool_call(name: str, input: dict[str, Any] | None = None, tool_use_id: str | None = None) -> ContentBlock:
    """A toolUse block for a scripted response."""
    return {"toolUse": {"toolUseId": tool_use_id or f"tooluse_{next(_ids)}", "name": name, "input": input or {}}}


class ScriptedModel:
    """Replays responses in order and records every call.

    Each response is a string (a text answer), a list of content blocks (use
    :func:`tool_call` for tool requests), a full assistant message dict, a list of raw stream
    events (``{"events": [...]}``), or an exception instance to raise. A response may also be
    a callable ``(messages, tool_specs, system_prompt) -> response`` that answers from what
    it was sent (with ``repeat_last=True``, one callable makes a model that is a function of
    its input). When the script runs out the model raises ``IndexError`` unless
    ``repeat_last=True``.

    Example::

        model = ScriptedModel([[tool_call("add", {"a": 1, "b": 2})], "It is 3."])
    """

    def __init__(
        self,
        responses: Iterable[Any],
        *,
        chunk_size: int = 0,
        delay: float = 0.0,
        repeat_last: bool = False,
    ) -> None:
        self.responses = list(responses)
        self.calls: list[ModelCall] = []
        self.chunk_size = chunk_size
        self.delay = delay
        self.repeat_last = repeat_last
        self._index = 0

    @property
    def remaining(self) -> int:
        return len(self.responses) - self._index

    def _next(self) -> Any:
        if self._index >= len(self.responses):
            if self.repeat_last and self.responses:
                return self.responses[-1]
            raise IndexError(f"ScriptedModel ran out of responses after {len(self.responses)} calls")
        response = self.responses[self._index]
        self._index += 1
        return response

    async def stream(
        self,
        messages: Sequence[Message],
        tool_specs: Sequence[dict[str, Any]] | None = None,
        system_prompt: str | None = None,
        *,
        tool_choice: dict[str, Any] | None = None,
    ) -> AsyncIterator[StreamEvent]:
        self.calls.append(
            ModelCall(
                messages=copy.deepcopy(list(messages)),
                tool_specs=list(tool_specs or []),
                system_prompt=system_prompt,
                tool_choice=copy.deepcopy(tool_choice),
            )
        )
        response = self._next()
        if callable(response) and not isinstance(response, BaseException):
            response = response(list(messages), list(tool_specs or []), system_prompt)
        if isinstance(response, BaseException):
            raise response
        if isinstance(response, dict) and "events" in response:
            events = list(response["events"])
        else:
            if isinstance(response, str):
                message: dict[str, Any] = {"role": "assistant", "content": [{"text": response}]}
            elif isinstance(response, list):
                message = {"role": "assistant", "content": copy.deepcopy(response)}
            elif isinstance(response, dict) and "content" in response:
                message = copy.deepcopy(response)
            else:
                raise TypeError(f"unsupported scripted response: {response!r}")
            events = message_to_events(message, chunk_size=self.chunk_size)
        for event in events:
            if self.delay:
                import asyncio  # imported by the first call, as in mooring._sync

                await asyncio.sleep(self.delay)
            yield event
