"""Store URLs pick a backend from the scheme table; other packages add schemes by entry point."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mooring.errors import ConfigurationError
from mooring.session import (
    FileSessionRepository,
    InMemorySessionRepository,
    SQLiteSessionRepository,
    open_repository,
)
from mooring.session.url import BUILTIN_BACKENDS, repository_class, scheme_of


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("/data/sessions", "file"),
        ("relative/dir", "file"),
        ("file:///data/sessions", "file"),
        ("C:\\sessions", "file"),
        ("sqlite:///x.db", "sqlite"),
        ("PostgreSQL://h/db", "postgresql"),
        ("s3://bucket/prefix", "s3"),
    ],
)
def test_scheme_of(url: str, scheme: str) -> None:
    assert scheme_of(url) == scheme


def test_every_builtin_target_is_a_repository_class_with_its_own_from_url() -> None:
    for scheme, target in BUILTIN_BACKENDS.items():
        cls = repository_class(target)
        assert "from_url" in vars(cls), f"{scheme}: {cls.__name__} parses no URL of its own"


def test_builtin_urls_build_their_backends(tmp_path: Path) -> None:
    file_repo = open_repository(f"file://{tmp_path / 'files'}?durability=none")
    assert isinstance(file_repo, FileSessionRepository) and not file_repo.durable
    assert isinstance(open_repository("memory:"), InMemorySessionRepository)
    sqlite_repo = open_repository(f"sqlite:///{tmp_path / 'x.db'}?busy_timeout=2.5")
    assert isinstance(sqlite_repo, SQLiteSessionRepository) and sqlite_repo.busy_timeout == 2.5


def test_bad_urls_name_what_is_wrong() -> None:
    with pytest.raises(ConfigurationError, match="unknown store URL scheme 'ftp'"):
        open_repository("ftp://host/x")
    with pytest.raises(ConfigurationError, match="names no bucket"):
        open_repository("s3:///prefix")
    with pytest.raises(ConfigurationError, match="local path"):
        open_repository("file://remote-host/x")
    with pytest.raises(ConfigurationError, match="empty store URL"):
        open_repository("")


def _install_plugin(site: Path, entry_points: dict[str, str], module_source: str) -> None:
    """A distribution on ``site`` declaring schemes in the ``mooring.backends`` group."""
    dist = site / "toy_backend-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-backend\nVersion: 1.0\n")
    lines = "".join(f"{scheme} = {target}\n" for scheme, target in entry_points.items())
    (dist / "entry_points.txt").write_text("[mooring.backends]\n" + lines)
    (site / "toy_backend.py").write_text(textwrap.dedent(module_source))


def test_a_package_registers_a_scheme_by_entry_point(tmp_path: Path) -> None:
    # A real distribution on sys.path, seen by importlib.metadata, in a fresh interpreter.
    _install_plugin(
        tmp_path,
        {"toy": "toy_backend:ToyRepository", "notarepo": "toy_backend:NOT_A_CLASS"},
        """
        from mooring.session import InMemorySessionRepository

        class ToyRepository(InMemorySessionRepository):
            @classmethod
            def from_url(cls, url):
                repo = cls()
                repo.url = url
                return repo

        NOT_A_CLASS = 1
        """,
    )
    code = textwrap.dedent(
        """
        from mooring.session import open_repository
        repo = open_repository("toy://anywhere/x?y=1")
        print(type(repo).__name__, repo.url)
        try:
            open_repository("notarepo://x")
        except Exception as exc:
            print(type(exc).__name__, exc)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.splitlines()
    assert first == "ToyRepository toy://anywhere/x?y=1"
    assert second.startswith("ConfigurationError") and "is not a SessionRepository class" in second


@pytest.mark.parametrize(
    ("old", "new", "name"),
    [
        ("mooring.session.file", "mooring.session.backends.file", "FileSessionRepository"),
        ("mooring.session.memory", "mooring.session.backends.memory", "InMemorySessionRepository"),
        ("mooring.session.sqlite", "mooring.session.backends.sql.sqlite", "SQLiteSessionManager"),
    ],
)
def test_old_module_paths_warn_and_hand_back_the_moved_names(old: str, new: str, name: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)
    sys.modules.pop(old, None)


def test_star_import_needs_no_optional_driver() -> None:
    import mooring.session as session

    # Every name in __all__ is bound at import time; none goes through the lazy __getattr__,
    # which would import a driver.
    assert [name for name in session.__all__ if name not in vars(session)] == []
    assert not hasattr(session, "InMemorySessionManager")


def test_postgres_url_options_keep_their_spaces() -> None:
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'mooring-agents[postgres]')")
    from mooring.session import PostgresSessionRepository

    repo = PostgresSessionRepository.from_url(
        "postgresql://u@h/db?schema=app&application_name=my%20app&options=-c%20search_path%3Dfoo"
    )
    assert repo.schema == "app"
    assert repo._db.params["application_name"] == "my app"
    assert repo._db.params["options"] == "-c search_path=foo"


def test_a_file_restore_past_a_stale_hint_reads_off_the_event_loop(tmp_path: Path) -> None:
    import asyncio
    import threading

    from mooring.session import MessageRecord, SessionRecord
    from mooring.session.records import AgentRecord

    repo = FileSessionRepository(tmp_path, durability="none")
    threads: list[str] = []
    read = repo._read_messages

    def spy(*args: object) -> object:
        threads.append(threading.current_thread().name)
        return read(*args)  # type: ignore[arg-type]

    async def run() -> None:
        await repo.create_session(SessionRecord(session_id="s"))
        await repo.create_agent("s", AgentRecord(agent_id="a"))
        records = [
            MessageRecord(
                message_id=i, message={"role": "user" if i % 2 == 0 else "assistant", "content": [{"text": "x"}]}
            )
            for i in range(40)
        ]
        await repo.append_messages("s", "a", records)
        repo._read_messages = spy  # type: ignore[method-assign]
        loop_thread = threading.current_thread().name
        # A Strands-written agent record has no head hint (0): the window is the whole history.
        # Another task on the loop: alone, the backend would run everything in place.
        other = asyncio.create_task(asyncio.sleep(30))
        window, head = await repo.read_window("s", "a", 0, head_hint=0)
        other.cancel()
        assert head == 40 and len(window) == 40
        assert threads and loop_thread not in threads
        threads.clear()
        small, _ = await repo.read_window("s", "a", 36, head_hint=0)  # 4 messages: cheap, in place
        assert len(small) == 4 and threads == [loop_thread]

    asyncio.run(run())
