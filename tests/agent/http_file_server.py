"""A threaded HTTP/1.1 file server on 127.0.0.1 for download tests: ranges, cuts, statuses."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
COMMIT = "0123456789abcdef0123456789abcdef01234567"
ETAG = "a" * 64


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that give up mid-body (the disk-full tests) are expected here.
        return None


class FakeServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 whose answers each test configures."""

    def __init__(self, payload: bytes = PAYLOAD) -> None:
        self.payload = payload
        # Seconds to pause after each MiB of a body, so a client can watch progress.
        self.chunk_delay = 0.0
        self.requests: list[tuple[str, str, str | None]] = []
        self.cut_next = 0
        self.statuses: dict[str, tuple[int, dict[str, str]]] = {}
        self.stopping = threading.Event()
        self._httpd = _QuietServer(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def ranges(self) -> list[str | None]:
        return [range_header for method, _, range_header in self.requests if method == "GET"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    routes: ClassVar[dict[str, Callable[[_Handler], None]]] = {}

    @property
    def fake(self) -> FakeServer:
        assert isinstance(self.server, _QuietServer)
        return self.server.fake

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def _dispatch(self, method: str) -> None:
        self.fake.requests.append((method, self.path, self.headers.get("Range")))
        if self.path in self.fake.statuses:
            status, headers = self.fake.statuses[self.path]
            self._reply(status, b"", headers)
            return
        if self.path.startswith("/status/"):
            self._reply(int(self.path.removeprefix("/status/")), b"")
            return
        handler = self.routes.get(self.path.split("/")[-1], _Handler._serve_with_ranges)
        handler(self)

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        for offset in range(0, len(body), 1 << 20):
            self.wfile.write(body[offset : offset + (1 << 20)])
            if self.fake.chunk_delay:
                time.sleep(self.fake.chunk_delay)

    def _content_range(self, start: int) -> str:
        size = len(self.fake.payload)
        return f"bytes {start}-{size - 1}/{size}"

    def _requested_start(self) -> int | None:
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        return int(match.group(1)) if match else None

    def _serve_with_ranges(self) -> None:
        start = self._requested_start() or 0
        body = self.fake.payload[start:]
        if self.fake.cut_next:
            self.fake.cut_next -= 1
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(body)))
            if start:
                self.send_header(
                    "Content-Range",
                    self._content_range(start),
                )
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            # Drop the connection mid-body.
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if start:
            headers = {"Content-Range": self._content_range(start)}
            self._reply(206, body, headers)
        else:
            self._reply(200, body)

    def _ignore_ranges(self) -> None:
        self._reply(200, self.fake.payload)

    def _wrong_content_range(self) -> None:
        start = self._requested_start()
        if start is None:
            self._reply(200, self.fake.payload)
        else:
            wrong = start + 7
            headers = {"Content-Range": self._content_range(wrong)}
            self._reply(206, self.fake.payload[wrong:], headers)

    def _range_not_satisfiable(self) -> None:
        if self._requested_start() is None:
            self._reply(200, self.fake.payload)
        else:
            self._reply(416, b"", {"Content-Range": f"bytes */{len(self.fake.payload)}"})

    def _stall(self) -> None:
        self.fake.stopping.wait(10)

    def _huggingface_file(self) -> None:
        headers = {"ETag": f'"{ETAG}"', "X-Repo-Commit": COMMIT}
        self._reply(200, self.fake.payload, headers)


_Handler.routes = {
    "ignores-range.gguf": _Handler._ignore_ranges,
    "wrong-range.gguf": _Handler._wrong_content_range,
    "416.gguf": _Handler._range_not_satisfiable,
    "stall.gguf": _Handler._stall,
    "hub-file.gguf": _Handler._huggingface_file,
}
