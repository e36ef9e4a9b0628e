"""The agent runtime: the loop, state, tools, hooks and conversation managers."""

from mooring.agent.agent import Agent
from mooring.agent.conversation import (
    ConversationManager,
    NullConversationManager,
    SlidingWindowConversationManager,
)
from mooring.agent.result import AgentResult
from mooring.agent.state import AgentState
from mooring.agent.summarizing import SummarizingConversationManager
from mooring.agent.tools import FunctionTool, ToolContext, tool

__all__ = [
    "Agent",
    "AgentResult",
    "AgentState",
    "ConversationManager",
    "FunctionTool",
    "NullConversationManager",
    "SlidingWindowConversationManager",
    "SummarizingConversationManager",
    "ToolContext",
    "tool",
]
