"""The mooring exception tree: one root, ``MooringError``."""

from __future__ import annotations


class MooringError(Exception):
    """Root of every error mooring raises on purpose."""


class ConfigurationError(MooringError):
    """A developer mistake in how mooring was set up (for example a duplicate agent_id)."""


class MissingAgentIdError(ConfigurationError, ValueError):
    """An Agent was given a session manager but no ``agent_id`` to store its conversation under."""


class InvalidIdentifierError(MooringError, ValueError):
    """A session, agent or multi-agent id that cannot be stored safely."""


class UnstorableContentError(MooringError, ValueError):
    """A message or state value that no backend can store as JSON (nested too deep, a lone
    surrogate in a string, a value JSON cannot hold); the message names which one and where.

    It is raised before anything of the write is stored.
    """


class SessionNotFoundError(MooringError, LookupError):
    """The named session does not exist in the store."""


class ConflictError(MooringError):
    """A conditional write lost: the record changed (or the id was taken) since it was read.

    ``head`` is the store's next free message id when the conflict is about messages,
    ``version`` the stored record version when it is about a versioned record.
    """

    def __init__(self, message: str, *, head: int | None = None, version: int | None = None) -> None:
        super().__init__(message)
        self.head = head
        self.version = version


class LeaseTimeoutError(MooringError, TimeoutError):
    """Another process held the session's invocation lease for longer than we were willing to wait."""


class LeaseLostError(MooringError):
    """The invocation lease expired or was taken over while the invocation ran (fencing)."""


class CorruptRecordError(MooringError):
    """A stored record could not be decoded; the message names which one."""


class StorageUnavailableError(MooringError):
    """The storage backend could not be reached or failed; the driver error is chained."""


class ReadOnlyStoreError(StorageUnavailableError):
    """A write was asked of a store that can only be read (its message names the store)."""


class ModelError(MooringError):
    """A model provider failed."""


class ModelThrottledError(ModelError):
    """The provider kept throttling after the bounded retries."""


class ContextWindowOverflowError(ModelError):
    """The conversation no longer fits the model's context window."""


class StructuredOutputError(ModelError):
    """The model did not produce a valid structured output within the allowed retries.

    ``output_model`` is the pydantic class that was asked for, ``attempts`` how many answers
    were tried, and ``errors`` the validation errors of the last one (pydantic's
    ``errors()`` dicts; empty when the model never called the output tool).
    """

    def __init__(
        self,
        message: str,
        *,
        output_model: type | None = None,
        attempts: int = 0,
        errors: list[dict[str, object]] | None = None,
    ) -> None:
        super().__init__(message)
        self.output_model = output_model
        self.attempts = attempts
        self.errors: list[dict[str, object]] = list(errors or [])


class ModelNotAvailableError(ModelError, ConfigurationError):
    """The requested model or provider cannot be used here (unknown name, missing SDK, credentials)."""


class MaxCyclesExceededError(MooringError):
    """The agent loop ran more model/tool cycles than ``max_cycles`` allows."""


class ConcurrentInvocationError(MooringError):
    """A second invocation started on an Agent instance while the first was still running."""


class ToolError(MooringError):
    """A tool definition is invalid."""


def missing_extra(extra: str, module: str) -> ImportError:
    """The ImportError raised when an optional driver is not installed."""
    return ImportError(f"{module} is not installed; install it with: pip install 'mooring-agents[{extra}]'")
