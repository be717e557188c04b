"""A streaming HTTP response that notices a client leaving even while it has nothing to send.

Starlette's ``StreamingResponse`` only learns of a disconnect when a write fails (ASGI 2.4), so a
request waiting in the buffer or for its first token would keep its place. Here a second task
watches ``receive()`` for ``http.disconnect`` and cancels the producer at once, which runs the
producer's cleanup (stop the agent, leave the buffer).

A client that stays connected but stops reading would hold its slot just as long: once the
transport's buffers fill, every write waits. With ``send_timeout_s`` a write that waits that long
ends the stream the same way; the connection is then closed unfinished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine, Mapping
from typing import Any, TypeVar

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from paddler_tui.server.balancer.web.write_timeout import WriteTimeout

logger = logging.getLogger(__name__)

T = TypeVar("T")


class LiveStreamingResponse(Response):
    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        *,
        media_type: str,
        headers: Mapping[str, str] | None = None,
        status_code: int = 200,
        send_timeout_s: float | None = None,
    ) -> None:
        self._chunks = chunks
        self._send_timeout_s = send_timeout_s
        self.status_code = status_code
        self.background = None
        raw = {"content-type": media_type, "cache-control": "no-cache", **(headers or {})}
        self.raw_headers = [(k.lower().encode(), v.encode()) for k, v in raw.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with contextlib.suppress(OSError):  # the client went away mid-write
            await while_connected(self._produce(send), receive)

    async def _produce(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        try:
            with WriteTimeout(self._send_timeout_s) as writes:
                async for chunk in self._chunks:
                    writes.begin()
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    writes.end()
        finally:
            aclose = getattr(self._chunks, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        if writes.timed_out:
            logger.warning(
                "a client read nothing for %.1f s; ending its stream", self._send_timeout_s
            )
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def while_connected(work: Coroutine[Any, Any, T], receive: Receive) -> T | None:
    """Run ``work`` until it ends or the client disconnects (then cancel it and return None)."""
    working = asyncio.create_task(work)
    watching = asyncio.create_task(_wait_for_disconnect(receive))
    try:
        await asyncio.wait({working, watching}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (working, watching):
            task.cancel()
        await asyncio.gather(working, watching, return_exceptions=True)
    if working.cancelled():
        return None
    return working.result()


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
