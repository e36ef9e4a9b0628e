"""Every built-in backend keeps the exact signatures of the ``SessionRepository`` contract.

A backend that renames a parameter, turns a keyword-only one positional or changes a default
still passes the contract suite (which calls it one way) but breaks callers that use another.
Import only: no server is needed.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import mooring.session
from mooring.session import SessionRepository

BACKENDS = [
    "InMemorySessionRepository",
    "FileSessionRepository",
    "SQLiteSessionRepository",
    "PostgresSessionRepository",
    "RedisSessionRepository",
    "S3SessionRepository",
]

CONTRACT_METHODS = sorted(
    name
    for name, member in inspect.getmembers(SessionRepository)
    if not name.startswith("_") and (inspect.isfunction(member) or inspect.ismethod(member))
)


def _annotation(value: Any) -> str:
    if value is inspect.Parameter.empty:
        return "<none>"
    return value if isinstance(value, str) else inspect.formatannotation(value)


def _shape(function: Any) -> dict[str, Any]:
    signature = inspect.signature(function)
    return {
        "parameters": [
            (
                p.name,
                p.kind.name,
                "<none>" if p.default is inspect.Parameter.empty else repr(p.default),
                _annotation(p.annotation),
            )
            for p in signature.parameters.values()
        ],
        "returns": _annotation(signature.return_annotation),
        "async": inspect.iscoroutinefunction(function),
    }


def test_the_contract_has_the_methods_this_test_expects() -> None:
    # Guards the discovery above: a change in how members are found must not empty the test.
    assert {"append_messages", "acquire_lease", "from_url", "read_window", "close", "describe"} <= set(CONTRACT_METHODS)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", CONTRACT_METHODS)
def test_backend_method_matches_the_contract(backend: str, method: str) -> None:
    cls = getattr(mooring.session, backend)
    assert issubclass(cls, SessionRepository)
    assert _shape(getattr(cls, method)) == _shape(getattr(SessionRepository, method))
