"""Private PostgreSQL and Redis servers for tests that stop, break or restart one.

Each server is a throwaway cluster / instance on a free port, so stopping it never disturbs
the shared services other tests use. Readiness is waited for with generous deadlines (the
machine running the suite may be busy), never with fixed sleeps.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from helpers.services import require_service

#: How long a starting or stopping server may take on a loaded machine.
READY_DEADLINE = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, up: bool, timeout: float = READY_DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(1.0)
            is_up = sock.connect_ex(("127.0.0.1", port)) == 0
        if is_up == up:
            return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} did not go {'up' if up else 'down'} within {timeout:g}s")


class PrivateServer:
    """A server that can be stopped and started again; ``start`` returns once it accepts work."""

    def __init__(
        self,
        start: Callable[[], None],
        stop: Callable[[], None],
        url: str,
        port: int,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        self._start, self._stop, self.url, self.port = start, stop, url, port
        self._ready = ready

    def start(self) -> None:
        self._start()
        wait_port(self.port, up=True)
        if self._ready is not None:
            deadline = time.monotonic() + READY_DEADLINE
            while not self._ready():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the server on port {self.port} did not get ready within {READY_DEADLINE:g}s")
                time.sleep(0.1)

    def stop(self) -> None:
        self._stop()
        wait_port(self.port, up=False)


@contextmanager
def private_redis(tmp_path: Path) -> Iterator[PrivateServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        require_service("redis-server", "the redis-server binary is not installed")
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    # appendfsync always: a restart keeps every acknowledged write, as a production setup would.
    args = [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"]
    args += ["--appendfsync", "always", "--dir", str(tmp_path)]

    def start() -> None:
        procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def stop() -> None:
        procs[-1].send_signal(signal.SIGKILL)
        procs[-1].wait()

    server = PrivateServer(start, stop, f"redis://127.0.0.1:{port}/0", port)
    try:
        server.start()
        yield server
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@contextmanager
def private_postgres() -> Iterator[PrivateServer]:
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bins or (os.geteuid() == 0 and shutil.which("runuser") is None):
        require_service("PostgreSQL binaries", "initdb/pg_ctl not found")
    bindir = Path(bins[-1])
    # pytest's tmp_path is private to root; the server user needs a directory of its own.
    tmp_path = Path(tempfile.mkdtemp(prefix="mooring-pg-"))
    data = tmp_path / "pgdata"
    port = free_port()
    prefix: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        prefix = ["runuser", "-u", "postgres", "--"]
        owner = pwd.getpwnam("postgres")
        os.chown(tmp_path, owner.pw_uid, owner.pw_gid)
    pg_ctl = [*prefix, str(bindir / "pg_ctl"), "-D", str(data)]
    try:
        subprocess.run(
            [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        options = f"-p {port} -k {tmp_path} -c listen_addresses=127.0.0.1 -c fsync=on"

        def start() -> None:
            log = str(tmp_path / "pg.log")
            timeout = str(int(READY_DEADLINE))
            subprocess.run(
                [*pg_ctl, "-o", options, "-l", log, "-w", "-t", timeout, "start"], check=True, stdout=subprocess.DEVNULL
            )

        def stop() -> None:
            # "immediate" is the closest to a crash pg_ctl offers: no clean shutdown of sessions.
            timeout = str(int(READY_DEADLINE))
            subprocess.run(
                [*pg_ctl, "-m", "immediate", "-w", "-t", timeout, "stop"], check=True, stdout=subprocess.DEVNULL
            )

        def ready() -> bool:
            probe = [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-t", "5"]
            return subprocess.run(probe, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0

        server = PrivateServer(start, stop, f"postgresql://postgres@127.0.0.1:{port}/postgres", port, ready)
        server.start()
        yield server
    finally:
        subprocess.run(
            [*pg_ctl, "-m", "immediate", "stop"], check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        shutil.rmtree(tmp_path, ignore_errors=True)
