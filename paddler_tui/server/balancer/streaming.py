"""A streaming HTTP response that notices a client leaving even while it has nothing to send.

Starlette's ``StreamingResponse`` only learns of a disconnect when a write fails (ASGI 2.4), so a
request waiting in the buffer or for its first token would keep its place. Here a second task
watches ``receive()`` for ``http.disconnect`` and cancels the producer at once, which runs the
producer's cleanup (stop the agent, leave the buffer).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class LiveStreamingResponse(Response):
    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        *,
        media_type: str,
        headers: Mapping[str, str] | None = None,
        status_code: int = 200,
    ) -> None:
        self._chunks = chunks
        self.status_code = status_code
        self.background = None
        raw = {"content-type": media_type, "cache-control": "no-cache", **(headers or {})}
        self.raw_headers = [(k.lower().encode(), v.encode()) for k, v in raw.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        producing = asyncio.create_task(self._produce(send))
        watching = asyncio.create_task(wait_for_disconnect(receive))
        try:
            await asyncio.wait({producing, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (producing, watching):
                task.cancel()
            results = await asyncio.gather(producing, watching, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception) and not isinstance(result, OSError):
                raise result

    async def _produce(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        try:
            async for chunk in self._chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            aclose = getattr(self._chunks, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
