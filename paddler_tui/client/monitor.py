"""The monitor socket (paddler-tui extension): live agents, requests, timeouts and events."""

from __future__ import annotations

from collections.abc import AsyncIterator

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, WebSocketException

from paddler_tui.api_key import authorization_headers
from paddler_tui.client.errors import (
    BalancerUnreachableError,
    HttpStatusError,
    MalformedResponseError,
)
from paddler_tui.protocol.errors import ProtocolError
from paddler_tui.protocol.monitor import MonitorUpdate, decode_monitor_update


async def monitor_updates(
    addr: str, *, open_timeout: float = 5, api_key: str | None = None
) -> AsyncIterator[MonitorUpdate]:
    """Updates from the management service at ``addr`` until the connection ends.

    A balancer without the extension (Paddler) answers the upgrade with 404, and one that wants
    another API key with 403; both are raised as :class:`HttpStatusError`.
    """
    url = f"ws://{addr}/api/v1/monitor_socket"
    try:
        async with connect(
            url,
            open_timeout=open_timeout,
            max_size=None,
            additional_headers=authorization_headers(api_key),
        ) as connection:
            async for frame in connection:
                try:
                    yield decode_monitor_update(frame)
                except ProtocolError as error:
                    raise MalformedResponseError(str(error)) from error
    except InvalidStatus as error:
        raise HttpStatusError(error.response.status_code, "monitor socket refused") from error
    except (OSError, WebSocketException, TimeoutError) as error:
        raise BalancerUnreachableError(f"{url}: {error}") from error
