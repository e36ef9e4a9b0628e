"""A moto S3 server on 127.0.0.1 for the S3 backend's tests (real HTTP, real boto3, no stubs).

Use from a session-scoped fixture::

    server = start_moto_server()
    yield server
    server.stop()

It is what ``moto.server.ThreadedMotoServer`` runs (moto's WSGI app and request handler on a
threaded werkzeug server, port 0 for a free one) plus one middleware:
moto checks ``If-None-Match``/``If-Match`` and then writes without holding a lock, while S3
evaluates a condition and applies the write atomically. So that races between our own
concurrent writers test mooring rather than moto, the server runs mutating requests (PUT,
POST, DELETE) one at a time; reads stay concurrent.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

ACCESS_KEY = "mooring-test"
SECRET_KEY = "mooring-test-secret"
REGION = "us-east-1"


class _SerialWrites:
    """WSGI middleware: one mutating request at a time (see the module docstring)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") in ("PUT", "POST", "DELETE"):
            with self.lock:
                # moto builds the whole response inside the call; materialise it under the lock.
                return list(self.app(environ, start_response))
        return self.app(environ, start_response)


@dataclass
class MotoS3:
    endpoint_url: str
    _server: Any
    _thread: threading.Thread
    _session: Any = None
    _admin: Any = None

    def boto_session(self) -> Any:
        """A boto3 session with explicit fake credentials (shared: building one costs ~0.1s)."""
        import boto3

        if self._session is None:
            self._session = boto3.session.Session(
                aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
            )
        return self._session

    def client(self, **kwargs: Any) -> Any:
        """A new boto3 S3 client for this server."""
        return self.boto_session().client("s3", endpoint_url=self.endpoint_url, region_name=REGION, **kwargs)

    @property
    def admin(self) -> Any:
        """One shared client for set-up and inspection in tests."""
        if self._admin is None:
            self._admin = self.client()
        return self._admin

    def new_bucket(self) -> str:
        """Create a fresh, uniquely named bucket and return its name."""
        name = f"mooring-{uuid.uuid4().hex[:16]}"
        self.admin.create_bucket(Bucket=name)
        return name

    def put_directly(self, bucket: str, objects: Iterable[tuple[str, bytes]]) -> int:
        """Store objects straight into the server's in-process state, skipping HTTP.

        For seeding big fixtures (thousands of keys) quickly; what a test measures still goes
        through boto3 and HTTP. Returns how many objects were stored.
        """
        from moto.core.models import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        count = 0
        for key, body in objects:
            backend.put_object(bucket, key, body)
            count += 1
        return count

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)
        self._server.server_close()


def start_moto_server() -> MotoS3:
    """Start moto in server mode on 127.0.0.1, on a free port."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per request otherwise
    app = _SerialWrites(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="moto-s3", daemon=True)
    thread.start()
    return MotoS3(endpoint_url=f"http://127.0.0.1:{server.server_port}", _server=server, _thread=thread)
