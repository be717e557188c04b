"""The shared httpx plumbing: one error mapping, JSON in and out through the wire codecs."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import httpx

from paddler_tui.api_key import authorization_headers
from paddler_tui.client.errors import (
    BalancerUnreachableError,
    ClientError,
    HttpStatusError,
    MalformedResponseError,
)
from paddler_tui.protocol import codec
from paddler_tui.protocol.errors import ProtocolError

T = TypeVar("T")

JSON_HEADERS = {"content-type": "application/json"}
# Streams may wait a long time for a first token (buffer, prompt ingestion).
DEFAULT_TIMEOUT = httpx.Timeout(10.0, read=None)


def base_url(addr: str) -> str:
    return addr if addr.startswith(("http://", "https://")) else f"http://{addr}"


@contextlib.contextmanager
def mapped_errors() -> Any:
    """httpx failures as :class:`ClientError` subclasses."""
    try:
        yield
    except httpx.TransportError as error:
        raise BalancerUnreachableError(str(error) or type(error).__name__) from error
    except ProtocolError as error:
        raise MalformedResponseError(str(error)) from error


def decode(tp: Any, data: bytes | str) -> Any:
    try:
        return codec.decode(codec.adapter_for(tp), data)
    except ProtocolError as error:
        raise MalformedResponseError(str(error)) from error


def encode(tp: Any, value: Any) -> bytes:
    return codec.encode(codec.adapter_for(tp), value)


class HttpClient:
    """One ``httpx.AsyncClient`` for one service's base address (with its API key, if any)."""

    def __init__(
        self, addr: str, *, timeout: httpx.Timeout = DEFAULT_TIMEOUT, api_key: str | None = None
    ) -> None:
        self.base_url = base_url(addr)
        self._client = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, headers=authorization_headers(api_key)
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self, method: str, path: str, *, content: bytes | None = None
    ) -> httpx.Response:
        with mapped_errors():
            response = await self._client.request(
                method, path, content=content, headers=JSON_HEADERS if content else None
            )
        if response.status_code >= 400:
            raise HttpStatusError(response.status_code, response.text)
        return response

    @contextlib.asynccontextmanager
    async def stream(
        self, method: str, path: str, *, content: bytes | None = None
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """The body's chunks as they arrive; a status error is raised before the first one."""
        with mapped_errors():
            async with self._client.stream(
                method, path, content=content, headers=JSON_HEADERS if content else None
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise HttpStatusError(response.status_code, response.text)
                yield _chunks(response)


async def _chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_bytes():
            yield chunk
    except httpx.TransportError as error:
        raise BalancerUnreachableError(str(error) or type(error).__name__) from error


__all__ = ["ClientError", "HttpClient", "decode", "encode"]
