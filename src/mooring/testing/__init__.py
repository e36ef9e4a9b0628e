"""Public test helpers: the repository contract suite every backend must pass."""

from mooring.testing.contract import SessionRepositoryContract

__all__ = ["SessionRepositoryContract"]
