"""mooring: an agent SDK whose conversations never get lost."""

from mooring.agent import (
    Agent,
    AgentResult,
    AgentState,
    NullConversationManager,
    SlidingWindowConversationManager,
    SummarizingConversationManager,
    ToolContext,
    tool,
)
from mooring.errors import (
    ConcurrentInvocationError,
    ConfigurationError,
    ConflictError,
    CorruptRecordError,
    InvalidIdentifierError,
    LeaseTimeoutError,
    MooringError,
    SessionNotFoundError,
    StorageUnavailableError,
    StructuredOutputError,
    UnstorableContentError,
)

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AgentResult",
    "AgentState",
    "ConcurrentInvocationError",
    "ConfigurationError",
    "ConflictError",
    "CorruptRecordError",
    "InvalidIdentifierError",
    "LeaseTimeoutError",
    "MooringError",
    "NullConversationManager",
    "SessionNotFoundError",
    "SlidingWindowConversationManager",
    "StorageUnavailableError",
    "StructuredOutputError",
    "SummarizingConversationManager",
    "ToolContext",
    "UnstorableContentError",
    "tool",
]
