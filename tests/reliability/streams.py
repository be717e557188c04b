"""Following many requests on one inference socket until each has its last message."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import TypeGuard

from websockets.asyncio.client import ClientConnection

from paddler_tui.client.inference_socket import ends_stream
from paddler_tui.protocol.envelope import ErrorEnvelope, GeneratedToken
from paddler_tui.protocol.generated_token import ContentToken, Done
from paddler_tui.protocol.inference_socket import (
    InferenceServerMessage,
    ResponseEnvelope,
    decode_inference_server_message,
)


class SocketRequests:
    """Every message of every request on ``socket``, by request id."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.messages: dict[str, list[InferenceServerMessage]] = {}

    def ended(self, request_id: str) -> bool:
        messages = self.messages.get(request_id, [])
        return bool(messages) and ends_stream(messages[-1], embedding=False)

    async def read_until(self, done: Callable[[], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                message = decode_inference_server_message(await self.socket.recv())
                request_id = getattr(message, "request_id", None)
                if request_id is not None:
                    self.messages.setdefault(request_id, []).append(message)

    async def until_streaming(self, *request_ids: str, timeout: float = 30) -> None:
        """Until each request has a token (it runs on an agent) or has ended."""
        await self.read_until(
            lambda: all(self.messages.get(r) for r in request_ids), timeout=timeout
        )

    async def until_ended(self, *request_ids: str, timeout: float = 30) -> None:
        await self.read_until(lambda: all(self.ended(r) for r in request_ids), timeout=timeout)

    def last(self, request_id: str) -> InferenceServerMessage:
        return self.messages[request_id][-1]

    def served_by(self, request_id: str) -> str | None:
        first = self.messages[request_id][0]
        return first.generated_by if isinstance(first, ResponseEnvelope) else None


def is_done(message: InferenceServerMessage) -> TypeGuard[ResponseEnvelope]:
    return (
        isinstance(message, ResponseEnvelope)
        and isinstance(message.response, GeneratedToken)
        and isinstance(message.response.value, Done)
    )


def is_content(message: InferenceServerMessage) -> bool:
    return (
        isinstance(message, ResponseEnvelope)
        and isinstance(message.response, GeneratedToken)
        and isinstance(message.response.value, ContentToken)
    )


def error_code(message: InferenceServerMessage) -> int | None:
    return message.error.code if isinstance(message, ErrorEnvelope) else None


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))
