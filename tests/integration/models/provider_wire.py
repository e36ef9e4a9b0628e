"""A scripted HTTP server on 127.0.0.1 that speaks the providers' wire formats.

The provider SDKs talk to it exactly as they would to the real APIs: server-sent events for
Anthropic and OpenAI, the AWS event-stream binary framing for Bedrock's ``converse_stream``.
Responses come from the JSON files under ``data/<provider>/``; every request is recorded.
"""

from __future__ import annotations

import json
import struct
import threading
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WireServer:
    """Answers each request with the next queued reply (a 500 when none is left)."""

    replies: list[Reply] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _httpd: ThreadingHTTPServer | None = None

    def queue(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def unanswered(self) -> int:
        with self._lock:
            return len(self.replies)

    def start(self) -> WireServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the real APIs: clients reuse connections
            timeout = 10

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                with server._lock:
                    server.requests.append(Recorded(self.command, self.path, headers, body))
                    reply = server.replies.pop(0) if server.replies else None
                if reply is None:
                    reply = json_reply(500, {"message": f"no scripted reply left for {self.command} {self.path}"})
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
                self.wfile.flush()

            do_POST = _handle
            do_GET = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="wire-server", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()


# -- encoders -------------------------------------------------------------------------------------


def json_reply(status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body).encode())


def sse_reply(events: list[dict[str, Any]]) -> Reply:
    """Server-sent events: each item has ``data`` (JSON or a string such as ``[DONE]``) and maybe ``event``."""
    chunks = []
    for item in events:
        data = item["data"] if isinstance(item["data"], str) else json.dumps(item["data"])
        prefix = f"event: {item['event']}\n" if "event" in item else ""
        chunks.append(f"{prefix}data: {data}\n\n")
    return Reply(200, {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}, "".join(chunks).encode())


def eventstream_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message: prelude (total and headers length) + CRC, headers, payload, CRC.

    Header values are all strings (type 7): a 1-byte name length, the name, the type byte,
    a 2-byte value length and the value.
    """
    encoded = b"".join(
        struct.pack("!B", len(name.encode()))
        + name.encode()
        + struct.pack("!BH", 7, len(value.encode()))
        + value.encode()
        for name, value in headers.items()
    )
    total = 4 + 4 + 4 + len(encoded) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded))
    message = prelude + struct.pack("!I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack("!I", zlib.crc32(message))


def eventstream_reply(events: list[dict[str, Any]]) -> Reply:
    """A converse_stream response body: ``{"event": name, "payload": {...}}`` or ``{"exception": name, ...}``."""
    body = b""
    for item in events:
        payload = json.dumps(item.get("payload", {})).encode()
        if "exception" in item:
            headers = {":message-type": "exception", ":exception-type": item["exception"]}
        else:
            headers = {":message-type": "event", ":event-type": item["event"]}
        headers[":content-type"] = "application/json"
        body += eventstream_message(headers, payload)
    return Reply(
        200,
        {
            "Content-Type": "application/vnd.amazon.eventstream",
            "x-amzn-RequestId": "00000000-0000-4000-8000-000000000000",
        },
        body,
    )


def load(provider: str, name: str) -> list[Reply]:
    """The replies recorded in ``data/<provider>/<name>.json``, in order."""
    spec = json.loads((DATA / provider / f"{name}.json").read_text())
    replies = []
    for item in spec["responses"]:
        if "sse" in item:
            replies.append(sse_reply(item["sse"]))
        elif "eventstream" in item:
            replies.append(eventstream_reply(item["eventstream"]))
        else:
            replies.append(json_reply(item["status"], item["json"], item.get("headers")))
    return replies


# -- driving a model -----------------------------------------------------------------------------


@dataclass
class Outcome:
    events: list[dict[str, Any]]
    message: dict[str, Any]
    stop_reason: str
    usage: dict[str, int]


def run_stream(
    model: Any,
    messages: list[dict[str, Any]] | None = None,
    tool_specs: list[dict[str, Any]] | None = None,
    system_prompt: str | None = None,
) -> Outcome:
    """Stream one model call to the end and fold it, as the agent loop does."""
    import asyncio

    from mooring.models import StreamAssembler

    messages = messages if messages is not None else [{"role": "user", "content": [{"text": "Hi"}]}]

    async def go() -> Outcome:
        assembler = StreamAssembler()
        events = []
        async for event in model.stream(messages, tool_specs, system_prompt):
            events.append(event)
            assembler.feed(event)
        return Outcome(events, dict(assembler.message()), assembler.stop_reason, dict(assembler.usage))

    return asyncio.run(go())


def tool_spec(name: str, description: str = "", properties: dict[str, Any] | None = None) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties or {}, "required": sorted(properties or {})}
    return {"name": name, "description": description or name, "inputSchema": {"json": schema}}


ADD_SPEC = tool_spec("add", "Add two integers.", {"a": {"type": "integer"}, "b": {"type": "integer"}})
WEATHER_SPEC = tool_spec("get_weather", "The weather in a city.", {"city": {"type": "string"}})
