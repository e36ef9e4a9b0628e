"""How tests find the real services they need (PostgreSQL, Redis, the moto S3 server)."""

from __future__ import annotations

import os

import pytest


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_service(name: str, reason: str) -> None:
    """Skip on a laptop without the service; fail under CI, where every service must be up."""
    if under_ci():
        pytest.fail(f"{name} is required under CI (CI=true) but unavailable: {reason}")
    pytest.skip(f"{name} not available: {reason}")


POSTGRES_DSN = os.environ.get("MOORING_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("MOORING_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
