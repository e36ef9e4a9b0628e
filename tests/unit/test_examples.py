"""Every script in examples/ runs offline, in a fresh working directory, and says what it showed.

Each example is run as a user would run it (``python examples/NAME.py``) in a subprocess
whose current directory is a temporary one, so whatever it stores lands there. The backend
examples that need a server run against the real local services, found the way the other
service tests find them (skipped without them, failing under CI=true); the S3 one runs
against a moto S3 server on loopback.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from helpers.services import POSTGRES_DSN, REDIS_URL, require_service

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TIMEOUT = 300  # generous: the machine is shared


def run_example(
    name: str, *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **(env or {})}
    environment["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), environment.get("PYTHONPATH", "")])
    environment.pop("MOORING_MODEL", None)  # the examples must run on the offline model
    environment.pop("MOORING_STORE", None)
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def ok(completed: subprocess.CompletedProcess[str]) -> str:
    assert completed.returncode == 0, (
        f"exit {completed.returncode}\nstdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
    )
    return completed.stdout


# Which test runs which example; test_every_example_is_tested keeps this complete.
COVERED = {
    "seed_scenario.py",
    "tools.py",
    "backend_by_url.py",
    "postgres_backend.py",
    "redis_backend.py",
    "s3_backend.py",
    "custom_repository.py",
    "two_processes.py",
    "cli_sessions.py",
    "long_conversation.py",
    "structured_output.py",
}


def test_every_example_is_tested_and_says_what_it_shows_and_how_to_run_it() -> None:
    scripts = {path.name for path in EXAMPLES.glob("*.py")}
    assert scripts == COVERED
    for name in sorted(scripts):
        docstring = ast.get_docstring(ast.parse((EXAMPLES / name).read_text(encoding="utf-8")))
        assert docstring, f"{name} has no module docstring"
        assert "Shows" in docstring and "Run" in docstring, (
            f"{name}'s docstring must say what it shows and how to run it"
        )
        assert f"examples/{name}" in docstring, f"{name}'s docstring must show its own command line"


def test_seed_scenario_restores_the_first_run_in_the_second(tmp_path: Path) -> None:
    first = ok(run_example("seed_scenario.py", cwd=tmp_path))
    assert "run 1: restored 0 messages" in first
    second = ok(run_example("seed_scenario.py", cwd=tmp_path))
    assert "run 2: restored 8 messages" in second
    assert 'You asked: "Use word_count on "the quick brown fox""' in second
    assert (tmp_path / "sessions" / "session_user-abc-123" / "agents" / "agent_assistant" / "agent.json").is_file()


def test_tools(tmp_path: Path) -> None:
    out = ok(run_example("tools.py", cwd=tmp_path))
    assert "The tool returned: 42" in out
    assert "The tool returned: HELLO THERE" in out
    assert "agent.state notes: ['buy milk']" in out
    assert "The tool reported an error: tool 'divide' failed: ZeroDivisionError" in out


def test_structured_output(tmp_path: Path) -> None:
    out = ok(run_example("structured_output.py", cwd=tmp_path))
    assert "offline model: Weather(city='Paris', celsius=21.5)" in out
    assert "after one retry: Weather(city='Oslo', celsius=-2.0)" in out
    assert "the model was told: Weather input is not valid (celsius: Field required)" in out
    assert "direct tool call: [{'json': 4}] (14 messages in the conversation)" in out
    assert "a new Agent restored 14 messages" in out
    again = ok(run_example("structured_output.py", cwd=tmp_path))
    assert "a new Agent restored 30 messages" in again  # the first run's 16 stored messages, and this run's
    assert (tmp_path / "structured-sessions" / "session_structured-demo").is_dir()


def test_backend_by_url_defaults_to_sqlite_in_the_current_directory(tmp_path: Path) -> None:
    out = ok(run_example("backend_by_url.py", cwd=tmp_path))
    assert "ok: the second agent continued session 'example-session' with 2 stored messages" in out
    assert (tmp_path / "sessions.db").is_file()


def test_backend_by_url_with_the_file_store(tmp_path: Path) -> None:
    out = ok(run_example("backend_by_url.py", "./store", cwd=tmp_path))
    assert "ok: the second agent continued" in out
    assert (tmp_path / "store" / "session_example-session" / "session.json").is_file()


@pytest.mark.parametrize(
    ("name", "variable"),
    [
        ("postgres_backend.py", "MOORING_EXAMPLE_POSTGRES_URL"),
        ("redis_backend.py", "MOORING_EXAMPLE_REDIS_URL"),
        ("s3_backend.py", "MOORING_EXAMPLE_S3_URL"),
    ],
)
def test_a_server_backend_example_without_its_url_says_which_variable_to_set(
    tmp_path: Path, name: str, variable: str
) -> None:
    completed = run_example(name, cwd=tmp_path, env={variable: ""})
    assert completed.returncode == 1
    assert completed.stdout == ""
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"set {variable} to "), completed.stderr


@pytest.mark.postgres
def test_postgres_backend(tmp_path: Path) -> None:
    psycopg = pytest.importorskip("psycopg")
    try:
        psycopg.connect(POSTGRES_DSN, connect_timeout=5).close()
    except psycopg.Error as exc:
        require_service("postgres", f"{POSTGRES_DSN}: {exc}")
    schema = f"example_{uuid.uuid4().hex[:12]}"
    try:
        url = f"{POSTGRES_DSN}?schema={schema}"
        out = ok(run_example("postgres_backend.py", cwd=tmp_path, env={"MOORING_EXAMPLE_POSTGRES_URL": url}))
        assert "ok: the second agent continued" in out
        assert "[postgresql://" in out
    finally:
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.mark.redis
def test_redis_backend(tmp_path: Path) -> None:
    redis = pytest.importorskip("redis")
    admin = redis.Redis.from_url(REDIS_URL)
    prefix = f"mooring-example-{uuid.uuid4().hex[:12]}"
    try:
        try:
            admin.ping()
        except redis.RedisError as exc:
            require_service("redis", f"{REDIS_URL}: {exc}")
        url = f"{REDIS_URL}?prefix={prefix}"
        out = ok(run_example("redis_backend.py", "--cleanup", cwd=tmp_path, env={"MOORING_EXAMPLE_REDIS_URL": url}))
        assert "ok: the second agent continued" in out
        assert "deleted session 'example-session'" in out
        left = [key for key in admin.scan_iter(match=f"{prefix}:*") if not key.endswith(b":sessions")]
        assert left == [], "--cleanup left the session's keys behind"
    finally:
        keys = list(admin.scan_iter(match=f"{prefix}:*"))
        if keys:
            admin.delete(*keys)
        admin.close()


@pytest.mark.s3
def test_s3_backend_on_moto(tmp_path: Path) -> None:
    pytest.importorskip("boto3")
    pytest.importorskip("moto")
    from helpers.s3server import ACCESS_KEY, REGION, SECRET_KEY, start_moto_server

    server = start_moto_server()
    try:
        bucket = server.new_bucket()
        env = {
            "MOORING_EXAMPLE_S3_URL": f"s3://{bucket}/sessions?region_name={REGION}&endpoint_url={server.endpoint_url}",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }
        out = ok(run_example("s3_backend.py", cwd=tmp_path, env=env))
        assert "ok: the second agent continued" in out
        listed = server.admin.list_objects_v2(Bucket=bucket, Prefix="sessions/session_example-session/")
        keys = {item["Key"] for item in listed.get("Contents", [])}
        assert "sessions/session_example-session/agents/agent_assistant/messages/message_3.json" in keys
    finally:
        server.stop()


def test_custom_repository_runs_an_agent_and_logs_its_writes(tmp_path: Path) -> None:
    out = ok(run_example("custom_repository.py", cwd=tmp_path))
    assert "The capital of Italy is Rome." in out
    assert "append_messages audited-session/assistant [0, 1]" in out
    # A plain turn writes only its messages; the agent record's advisory fields may trail.
    assert "update_agent" not in out


def test_custom_repository_passes_the_contract_suite(tmp_path: Path) -> None:
    out = ok(run_example("custom_repository.py", "--contract", cwd=tmp_path))
    summary = out.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, out


def test_two_processes_on_one_session_lose_nothing(tmp_path: Path) -> None:
    out = ok(run_example("two_processes.py", "--turns", "4", cwd=tmp_path))
    assert "ok: 8 turns from 2 processes, all 16 messages stored exactly once, in order" in out
    assert "[process-A, pid" in out and "[process-B, pid" in out


def test_cli_sessions_lists_shows_and_exports(tmp_path: Path) -> None:
    out = ok(run_example("cli_sessions.py", cwd=tmp_path))
    assert "$ mooring sessions list --store ./cli-sessions" in out
    assert "The capital of Spain is Madrid." in out  # from `sessions show`
    assert "--json: session cli-demo has 6 messages (['assistant'])" in out
    export = (tmp_path / "cli-demo.jsonl").read_text(encoding="utf-8").splitlines()
    assert '"mooring-export"' in export[0]
    assert len(export) > 6


def test_long_conversation_stays_in_budget_and_keeps_every_message(tmp_path: Path) -> None:
    out = ok(run_example("long_conversation.py", "--turns", "40", cwd=tmp_path))
    assert "stored messages: 162 (none deleted)" in out
    assert "pinned opening: 'Task: review the server logs day by day and report slow requests.'" in out
    assert "summary: '[offline model]" in out
    largest = int(out.split("largest input the model reported: ")[1].split(" ")[0])
    assert 0 < largest <= 6000
    assert "after a restart the model would see the same context: True" in out
