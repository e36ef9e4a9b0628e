"""Fixtures for the CLI tests: a fresh file store per test, sessions written by the real Agent."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import Cli, write_session

from mooring import Agent


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    path.mkdir()
    return path


@pytest.fixture
def make_session(store: Path) -> Callable[..., Agent]:
    def make(session_id: str, turns: Sequence[tuple[str, Sequence[Any]]] | None = None, **options: Any) -> Agent:
        return write_session(store, session_id, turns or [("hello", ["hi there"])], **options)

    return make


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys)
