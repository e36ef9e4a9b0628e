"""A fork server for the workloads that need many real processes: crash trials and
same-session concurrency.

``python -m bench.zygote`` imports both SDKs once, then serves JSON commands (one per line
on stdin, one JSON answer per line on stdout). Each trial process is an ``os.fork()`` of
this single-threaded, already-importing process, so a kill -9 trial costs milliseconds
instead of a 0.7 s interpreter start, and concurrent workers start their turns together
instead of staggered by their imports. The zygote itself never opens a store, a
connection, an event loop or a thread, so every child starts clean.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from bench import systems


def _redirect_stderr(path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 2)
    os.close(fd)


def _read_byte(fd: int, timeout: float) -> bytes:
    ready, _, _ = select.select([fd], [], [], timeout)
    return os.read(fd, 1) if ready else b""


def _drain(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _tail(path: str) -> str:
    try:
        lines = Path(path).read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def crash(cmd: dict[str, Any]) -> dict[str, Any]:
    """Fork a child that restores the session and runs tool turns in a loop; kill -9 it
    ``delay`` seconds after its Agent is ready. Returns how many turns it completed."""
    spec, session, family = cmd["store"], cmd["session"], cmd["family"]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        code = 1
        try:
            _redirect_stderr(cmd["stderr"])
            agent = systems.build_agent(spec, session, family=family, cm="window", tools=True)
            os.write(write_end, b"R")
            for i in range(100000):
                agent(f"{session}-t{i}")
                os.write(write_end, b"T")
            code = 0
        except BaseException:
            traceback.print_exc()
            os.write(write_end, b"E")
        finally:
            os._exit(code)
    os.close(write_end)
    ready = _read_byte(read_end, 60) == b"R"
    if ready:
        time.sleep(cmd["delay"])
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    rest = _drain(read_end)
    os.close(read_end)
    return {"ready": ready, "turns": rest.count(b"T"), "failed": b"E" in rest, "stderr": _tail(cmd["stderr"])}


def concurrency(cmd: dict[str, Any]) -> dict[str, Any]:
    """``workers`` processes run ``turns`` tool turns each on one session, started together."""
    spec, session, family = cmd["store"], cmd["session"], cmd["family"]
    workers, turns = cmd["workers"], cmd["turns"]
    stderr_dir = Path(cmd["stderr_dir"])

    # The session and agent exist before the workers start, as for any live conversation, so
    # the trial measures concurrent turns and not a concurrent first creation.
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            _redirect_stderr(str(stderr_dir / "create.err"))
            systems.close_agent(systems.build_agent(spec, session, family=family, cm="null", tools=True))
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        return {"error": f"creating the session failed: {_tail(str(stderr_dir / 'create.err'))}"}

    go_read, go_write = os.pipe()
    ready_read, ready_write = os.pipe()
    pids = []
    for index in range(workers):
        pid = os.fork()
        if pid == 0:
            os.close(go_write)
            os.close(ready_read)
            code = 1
            try:
                _redirect_stderr(str(stderr_dir / f"w{index}.err"))
                agent = systems.build_agent(spec, session, family=family, cm="null", tools=True)
                os.write(ready_write, b"R")
                os.read(go_read, 1)
                for t in range(turns):
                    agent(f"w{index}-t{t}")
                systems.close_agent(agent)
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        pids.append(pid)
    os.close(go_read)
    os.close(ready_write)
    ready = 0
    deadline = time.monotonic() + 120
    while ready < workers and time.monotonic() < deadline:
        got = _read_byte(ready_read, max(deadline - time.monotonic(), 0))
        if not got:
            break
        ready += 1
    started = time.monotonic()
    os.write(go_write, b"G" * workers)
    codes = []
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        codes.append(os.waitstatus_to_exitcode(status))
    wall = time.monotonic() - started
    os.close(go_write)
    os.close(ready_read)
    failures = [f"worker {i} exited {c}: {_tail(str(stderr_dir / f'w{i}.err'))}" for i, c in enumerate(codes) if c]
    return {"wall": wall, "ready": ready, "exit_codes": codes, "failures": failures}


OPS = {"crash": crash, "concurrency": concurrency}


def _serve() -> None:
    # Import everything a child could need now, once, before any fork.
    import strands.session.file_session_manager
    import strands.session.snapshot_session_manager  # noqa: F401

    import mooring.session.backends.file.repository  # noqa: F401
    from bench import data  # noqa: F401

    for backend in ("sqlite", "postgres", "redis"):
        try:
            __import__(systems.BACKEND_MODULES[backend])
        except Exception:
            pass  # that backend is reported n/a by the bench
    systems.build_agent(None, "warm", family="mooring", cm="null")
    if threading.active_count() != 1:
        print(json.dumps({"error": "zygote has threads; refusing to fork"}), flush=True)
        return
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            result = OPS[cmd["op"]](cmd)
        except Exception as exc:
            result = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(result), flush=True)


class Zygote:
    """The bench side of the fork server."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=cwd,
        )
        hello = self._read()
        if not hello.get("ready"):
            self.close()
            raise RuntimeError(f"fork server did not start: {hello}")

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"fork server exited ({self._proc.poll()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def call(self, cmd: dict[str, Any]) -> dict[str, Any]:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(cmd) + "\n")
        self._proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


if __name__ == "__main__":
    _serve()
