"""By default nothing listens beyond loopback (issue 8, item 3).

Every listening address a command has by default is a loopback one (the OpenAI service is off,
agents and the TUI only dial out), and the balancer binds exactly the host it is given.
"""

from __future__ import annotations

import ipaddress

import pytest

from paddler_tui.cli import DEFAULT_INFERENCE_ADDR, DEFAULT_MANAGEMENT_ADDR, build_parser
from paddler_tui.net_address import HostPort
from paddler_tui.server.balancer.balancer import BalancerSettings
from paddler_tui.server.balancer.main import prepare_balancer


def is_loopback(host: str) -> bool:
    return host == "localhost" or ipaddress.ip_address(host).is_loopback


@pytest.mark.parametrize("command", ["balancer", "serve"])
def test_services_default_to_loopback(command: str) -> None:
    arguments = build_parser().parse_args([command])
    assert is_loopback(arguments.inference_addr.host)
    assert is_loopback(arguments.management_addr.host)
    assert arguments.compat_openai_addr is None


def test_the_tui_defaults_to_loopback() -> None:
    for addr in (DEFAULT_INFERENCE_ADDR, DEFAULT_MANAGEMENT_ADDR):
        assert is_loopback(HostPort.parse(addr).host)


async def test_the_balancer_binds_only_the_default_host() -> None:
    arguments = build_parser().parse_args(["balancer"])
    settings = BalancerSettings(
        inference_addr=HostPort(arguments.inference_addr.host, 0),
        management_addr=HostPort(arguments.management_addr.host, 0),
        compat_openai_addr=HostPort(arguments.inference_addr.host, 0),
    )
    _, sockets = await prepare_balancer(settings)
    try:
        assert len(sockets) == 3
        for sock in sockets.values():
            assert ipaddress.ip_address(sock.getsockname()[0]).is_loopback
    finally:
        for sock in sockets.values():
            sock.close()
