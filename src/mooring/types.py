"""Message and content types: Bedrock Converse-style dicts, typed with TypedDicts."""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from typing_extensions import NotRequired

Role = Literal["user", "assistant"]


class ToolUse(TypedDict):
    toolUseId: str
    name: str
    input: Any


class ToolResultContent(TypedDict, total=False):
    text: str
    json: Any
    image: dict[str, Any]
    document: dict[str, Any]


class ToolResult(TypedDict):
    toolUseId: str
    status: Literal["success", "error"]
    content: list[ToolResultContent]


class ContentBlock(TypedDict, total=False):
    text: str
    toolUse: ToolUse
    toolResult: ToolResult
    image: dict[str, Any]
    document: dict[str, Any]
    reasoningContent: dict[str, Any]
    cachePoint: dict[str, Any]
    guardContent: dict[str, Any]


class Message(TypedDict):
    role: Role
    content: list[ContentBlock]
    metadata: NotRequired[dict[str, Any]]


class Usage(TypedDict):
    inputTokens: int
    outputTokens: int
    totalTokens: int


StopReason = Literal["end_turn", "tool_use", "max_tokens", "stop_sequence", "guardrail_intervened", "content_filtered"]

# One streamed model event: a dict with exactly one key among messageStart, contentBlockStart,
# contentBlockDelta, contentBlockStop, messageStop, metadata, redactContent.
StreamEvent = dict[str, Any]


def text_of(message: Message | dict[str, Any]) -> str:
    """The concatenated text blocks of a message."""
    return "".join(block["text"] for block in message.get("content", []) if "text" in block)


def tool_uses(message: Message | dict[str, Any]) -> list[ToolUse]:
    return [block["toolUse"] for block in message.get("content", []) if "toolUse" in block]


def tool_result_ids(message: Message | dict[str, Any]) -> list[str]:
    return [block["toolResult"]["toolUseId"] for block in message.get("content", []) if "toolResult" in block]
