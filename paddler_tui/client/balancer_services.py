"""What every screen talks to: the balancer's public API, behind one object.

Screens get a :class:`BalancerServices` and never build clients themselves, so a screen works
the same against the embedded cluster, a remote balancer or a real Paddler, and snapshot tests
can point it at a fake balancer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from paddler_tui.client.inference_http import InferenceHttpClient
from paddler_tui.client.inference_socket import InferenceSocket
from paddler_tui.client.management import ManagementClient


@dataclass
class BalancerServices:
    inference_addr: str
    management_addr: str
    api_key: str | None = field(default=None, repr=False)
    management: ManagementClient = field(init=False)
    inference_http: InferenceHttpClient = field(init=False)
    _socket: InferenceSocket | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.management = ManagementClient(self.management_addr, api_key=self.api_key)
        self.inference_http = InferenceHttpClient(self.inference_addr, api_key=self.api_key)

    async def inference_socket(self) -> InferenceSocket:
        """The shared inference socket, (re)connected on demand.

        Raises :class:`~paddler_tui.client.errors.BalancerUnreachableError`, or
        :class:`~paddler_tui.client.errors.HttpStatusError` if the handshake is refused.
        """
        if self._socket is None or self._socket.closed:
            self._socket = await InferenceSocket.connect(self.inference_addr, api_key=self.api_key)
        return self._socket

    async def aclose(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        await self.management.aclose()
        await self.inference_http.aclose()
