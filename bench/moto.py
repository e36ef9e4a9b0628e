"""The moto S3 server every S3 row shares, and client-side S3 request counting.

The server runs in its own process (``python -m bench.moto``), so no measured process
shares its GIL with it. Its stdin takes one command: ``seed <file>``, which stores a batch
of objects straight into moto's backend (used to lay down Strands' S3 message objects in
exactly the bytes ``S3SessionManager`` writes, when 10,000 PUTs through HTTP would take
longer than the whole time budget allows). Closing stdin stops the server.

Requests are counted with botocore's ``before-call`` event, registered on every client
created in the process, so the count covers clients that mooring, Strands or boto3 build
internally.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

BUCKET = "mooring-bench"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def s3_env(port: int) -> dict[str, str]:
    """Environment that points every boto3 client of a process at the moto server."""
    env = dict(FAKE_CREDENTIALS)
    # botocore honours a service-specific endpoint variable, which reaches clients that take
    # no endpoint argument (Strands' S3Storage) without patching them.
    env["AWS_ENDPOINT_URL_S3"] = f"http://127.0.0.1:{port}"
    return env


class MotoServer:
    """Handle on the server process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.moto"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"moto server did not start: {line!r}")
        self.port = int(line)
        self._seeds = 0

    @property
    def env(self) -> dict[str, str]:
        return s3_env(self.port)

    def seed(self, objects: list[tuple[str, bytes]]) -> None:
        """Store ``(key, body)`` pairs in the bench bucket, bypassing HTTP."""
        self._seeds += 1
        path = self.root / f"seed-{self._seeds}.json"
        path.write_text(json.dumps([[k, b.decode("utf-8")] for k, b in objects]))
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(f"seed {path}\n")
        self._proc.stdin.flush()
        answer = self._proc.stdout.readline().strip()
        path.unlink()
        if answer != "ok":
            raise RuntimeError(f"moto seed failed: {answer}")

    def stop(self) -> None:
        if self._proc.poll() is None:
            try:
                assert self._proc.stdin is not None
                self._proc.stdin.close()
                self._proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()


class RequestCounter:
    """S3 API calls by operation name, and the bytes sent as request bodies."""

    def __init__(self) -> None:
        self.ops: Counter[str] = Counter()
        self.bytes_sent = 0
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self.ops.clear()
            self.bytes_sent = 0

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"ops": dict(self.ops), "total": sum(self.ops.values()), "bytes_sent": self.bytes_sent}

    def _before_call(self, model: Any = None, params: Any = None, **_: Any) -> None:
        size = 0
        body = params.get("body") if isinstance(params, dict) else None
        if isinstance(body, (bytes, bytearray, str)):
            size = len(body)
        elif body is not None and hasattr(body, "seek") and hasattr(body, "tell"):
            pos = body.tell()
            body.seek(0, os.SEEK_END)
            size = body.tell() - pos
            body.seek(pos)
        with self._lock:
            self.ops[getattr(model, "name", "?")] += 1
            self.bytes_sent += size


def install_request_counter() -> RequestCounter:
    """Count every S3 call made by clients created after this call, in this process."""
    import botocore.session

    counter = RequestCounter()
    original = botocore.session.Session.create_client

    def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = original(self, *args, **kwargs)
        client.meta.events.register("before-call.s3", counter._before_call)
        return client

    botocore.session.Session.create_client = create_client  # type: ignore[method-assign]
    return counter


def _serve() -> None:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer("127.0.0.1", 0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        if command != "seed":
            print(f"unknown command {command!r}", flush=True)
            continue
        try:
            backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
            for key, body in json.loads(Path(arg).read_text()):
                backend.put_object(BUCKET, key, body.encode("utf-8"))
            print("ok", flush=True)
        except Exception as exc:  # reported to the bench, which marks the rows n/a
            print(f"{type(exc).__name__}: {exc}".replace("\n", " "), flush=True)
    server.stop()


if __name__ == "__main__":
    _serve()


def share_botocore_loader() -> None:
    """Make every botocore session in this process share one data loader.

    Each ``boto3.Session`` otherwise parses the S3 service model and endpoint data again
    (tens of ms), and Strands builds a new session per manager. Sharing one warmed loader
    keeps that library start-up cost out of the S3 rows for every system alike, so they
    measure requests, not JSON parsing.
    """
    import functools

    import botocore.loaders
    import botocore.session

    shared = functools.lru_cache(maxsize=None)(botocore.loaders.create_loader)
    botocore.session.create_loader = shared  # type: ignore[attr-defined]
