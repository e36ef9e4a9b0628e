"""A tiny deterministic model for the real strands-agents package (interop tests, no network)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from strands.models.model import Model


class OfflineStrandsModel(Model):
    """The parts of Strands' Model interface a scripted test model does not use."""

    def update_config(self, **model_config: Any) -> None:
        return None

    def get_config(self) -> Any:
        return {}

    def structured_output(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


class EchoStrandsModel(OfflineStrandsModel):
    """Answers every prompt with ``echo: <last user text>`` through Strands' event stream."""

    async def stream(
        self, messages: Any, tool_specs: Any = None, system_prompt: Any = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        last = messages[-1]
        text = "".join(block.get("text", "") for block in last["content"])
        yield {"messageStart": {"role": "assistant"}}
        yield {"contentBlockStart": {"start": {}}}
        yield {"contentBlockDelta": {"delta": {"text": f"echo: {text}"}}}
        yield {"contentBlockStop": {}}
        yield {"messageStop": {"stopReason": "end_turn"}}
        yield {
            "metadata": {"usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}, "metrics": {"latencyMs": 1}}
        }


class SummarizingStrandsModel(OfflineStrandsModel):
    """Echoes prompts, overflows past ``limit`` messages, and answers summarization requests."""

    def __init__(self, limit: int = 12) -> None:
        self.limit = limit
        self.calls: list[Any] = []

    async def stream(
        self, messages: Any, tool_specs: Any = None, system_prompt: Any = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        from strands.types.exceptions import ContextWindowOverflowException

        self.calls.append({"messages": [dict(m) for m in messages], "system_prompt": system_prompt})
        if system_prompt is None and len(messages) > self.limit:
            raise ContextWindowOverflowException("too many messages for this test model")
        if system_prompt is not None:
            prompts = [b["text"] for m in messages[:-1] for b in m["content"] if "text" in b and m["role"] == "user"]
            text = f"Strands summary of {len(prompts)} user texts, first {prompts[0]!r}"
        else:
            text = "echo: " + "".join(block.get("text", "") for block in messages[-1]["content"])
        yield {"messageStart": {"role": "assistant"}}
        yield {"contentBlockStart": {"start": {}}}
        yield {"contentBlockDelta": {"delta": {"text": text}}}
        yield {"contentBlockStop": {}}
        yield {"messageStop": {"stopReason": "end_turn"}}
        yield {
            "metadata": {"usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}, "metrics": {"latencyMs": 1}}
        }
