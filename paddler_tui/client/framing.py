"""Sans-I/O splitting of streamed bodies: NDJSON lines and server-sent events."""

from __future__ import annotations


class LineSplitter:
    """Feed chunks, get complete lines (without the newline); a partial line waits."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        data = self._pending + chunk
        *lines, self._pending = data.split(b"\n")
        return [line.rstrip(b"\r") for line in lines]

    def finish(self) -> list[bytes]:
        rest, self._pending = self._pending, b""
        return [rest] if rest.strip() else []


class ServerSentEvents:
    """Feed chunks, get the ``data`` of each complete event (comments and keep-alives skipped)."""

    def __init__(self) -> None:
        self._lines = LineSplitter()
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        events: list[bytes] = []
        for line in self._lines.feed(chunk):
            if not line:
                if self._data:
                    events.append(b"\n".join(self._data))
                    self._data = []
            elif line.startswith(b"data:"):
                self._data.append(line[5:].removeprefix(b" "))
        return events
