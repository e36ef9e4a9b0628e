"""A newcomer's first hour: --version, reading a store that is not there, SQLite URLs, the demo."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import Cli

import mooring
from mooring.cli import version
from mooring.errors import ConfigurationError
from mooring.session import open_repository
from mooring.session.backends.sql.sqlite import SQLiteSessionRepository
from mooring.session.records import SessionRecord

SRC = str(Path(__file__).resolve().parents[3] / "src")


def test_version_prints_the_package_version(cli: Cli) -> None:
    code, out, err = cli("--version")
    assert code == 0, err
    assert out == f"mooring {mooring.__version__}\n"
    assert version() == mooring.__version__


# -- reading commands never create a store ----------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["sessions", "list"],
        ["sessions", "show", "s1"],
        ["sessions", "export", "s1"],
        ["sessions", "verify"],
        ["sessions", "verify", "--repair"],
        ["sessions", "delete", "s1", "--yes"],
        ["sessions", "fork", "s1", "s2"],
    ],
)
@pytest.mark.parametrize("kind", ["dir", "file-url", "sqlite"])
def test_reading_a_missing_store_is_an_error_naming_it(
    argv: list[str], kind: str, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url, created = {
        "dir": ("./typo", tmp_path / "typo"),
        "file-url": (f"file://{tmp_path / 'typo'}", tmp_path / "typo"),
        "sqlite": ("sqlite:///typo.db", tmp_path / "typo.db"),
    }[kind]
    code, out, err = cli(*argv, "--store", url)
    assert code == 1 and out == ""
    assert err.startswith("mooring: error: ") and err.count("\n") == 1
    assert "does not exist" in err and str(created) in err
    assert not created.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_missing_store_from_the_environment_is_an_error_too(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOORING_STORE", str(tmp_path / "nope"))
    code, _, err = cli("sessions", "list")
    assert code == 1 and str(tmp_path / "nope") in err
    assert not (tmp_path / "nope").exists()


def test_copy_needs_its_source_and_creates_its_destination(tmp_path: Path, cli: Cli) -> None:
    code, _, err = cli("sessions", "copy", "--from", str(tmp_path / "missing"), "--to", str(tmp_path / "dest"))
    assert code == 1 and str(tmp_path / "missing") in err
    assert not (tmp_path / "missing").exists() and not (tmp_path / "dest").exists()

    source = tmp_path / "source"
    _create(str(source), "s1")
    code, _, err = cli("sessions", "copy", "--from", str(source), "--to", f"sqlite:///{tmp_path / 'dest.db'}")
    assert code == 0, err
    assert (tmp_path / "dest.db").is_file()


def test_a_path_that_is_not_a_store_is_named(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "plain").write_text("x")
    code, _, err = cli("sessions", "list", "--store", str(tmp_path / "plain"))
    assert code == 1 and "is not a directory" in err
    (tmp_path / "dir.db").mkdir()
    code, _, err = cli("sessions", "list", "--store", f"sqlite:///{tmp_path / 'dir.db'}")
    assert code == 1 and "is not a file" in err


def test_existing_empty_stores_still_list_no_sessions(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "empty").mkdir()
    code, out, _ = cli("sessions", "list", "--store", str(tmp_path / "empty"))
    assert code == 0 and "no sessions" in out


# -- SQLite URLs: sqlite:///relative.db and sqlite:////absolute.db -----------------------------


def _create(url: str, session_id: str) -> None:
    async def run() -> None:
        repository = open_repository(url)
        try:
            await repository.create_session(SessionRecord(session_id=session_id))
        finally:
            await repository.close()

    asyncio.run(run())


def test_three_slashes_are_relative_to_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    repository = SQLiteSessionRepository.from_url("sqlite:///data/rel.db")
    assert repository.path == Path("data/rel.db")
    _create("sqlite:///data/rel.db", "s1")
    assert (tmp_path / "data" / "rel.db").is_file()
    assert not Path("/data/rel.db").exists()


def test_four_slashes_are_absolute(tmp_path: Path) -> None:
    database = tmp_path / "abs.db"
    url = f"sqlite:///{database}"  # sqlite:////tmp/...
    assert url.startswith("sqlite:////")
    assert SQLiteSessionRepository.from_url(url).path == database
    _create(url, "s1")
    assert database.is_file()


def test_other_sqlite_url_forms(tmp_path: Path) -> None:
    assert SQLiteSessionRepository.from_url("sqlite:rel.db").path == Path("rel.db")
    assert SQLiteSessionRepository.from_url(f"sqlite:{tmp_path}/x.db").path == tmp_path / "x.db"
    ro = SQLiteSessionRepository.from_url("sqlite:///rel.db?mode=ro&busy_timeout=2")
    assert ro.path == Path("rel.db") and ro.read_only and ro.busy_timeout == 2.0
    with pytest.raises(ConfigurationError, match="names a host"):
        SQLiteSessionRepository.from_url("sqlite://somehost/x.db")
    for empty in ("sqlite://", "sqlite:///"):
        with pytest.raises(ConfigurationError, match="names no database file"):
            SQLiteSessionRepository.from_url(empty)


def test_the_cli_reads_both_forms(tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _create("sqlite:///rel.db", "relative")
    _create(f"sqlite:///{tmp_path / 'abs.db'}", "absolute")
    listed = cli.json("sessions", "list", "--store", "sqlite:///rel.db")
    assert [s["session_id"] for s in listed["sessions"]] == ["relative"]
    listed = cli.json("sessions", "list", "--store", f"sqlite:////{str(tmp_path / 'abs.db').lstrip('/')}")
    assert [s["session_id"] for s in listed["sessions"]] == ["absolute"]


def test_help_examples_put_no_database_at_the_root(cli: Cli) -> None:
    for command in (["chat"], ["sessions"], ["sessions", "import"], ["sessions", "copy"]):
        _, out, _ = cli(*command, "--help")
        for word in out.split():
            if word.startswith("sqlite:"):
                assert word.startswith("sqlite:///") and not word.startswith("sqlite:////"), (command, word)


# -- the demo ---------------------------------------------------------------------------------


def test_the_demo_keeps_away_from_the_readme_sessions(tmp_path: Path) -> None:
    readme_store = tmp_path / "sessions" / "session_user-abc-123"
    readme_store.mkdir(parents=True)
    (readme_store / "session.json").write_text('{"session_id": "user-abc-123"}')
    done = subprocess.run(
        [sys.executable, "-m", "mooring", "demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")},
    )
    assert done.returncode == 0, done.stderr
    assert (readme_store / "session.json").read_text() == '{"session_id": "user-abc-123"}'
    assert sorted(p.name for p in (tmp_path / "sessions").iterdir()) == ["session_user-abc-123"]
    demo = tmp_path / "mooring-demo" / "session_demo-user-abc-123"
    assert (demo / "agents" / "agent_assistant" / "messages" / "message_0.json").is_file()
    assert f"stored in {tmp_path / 'mooring-demo'}" in done.stdout
    assert "mooring sessions show demo-user-abc-123 --store mooring-demo" in done.stdout
