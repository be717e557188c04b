from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from paddler_tui.cli import balancer_settings, build_parser, heartbeat, package_version
from paddler_tui.net_address import HostPort
from paddler_tui.server.balancer.routing.policy import Routing
from paddler_tui.server.heartbeat import Heartbeat
from paddler_tui.server.local_agents import LocalAgents, LocalAgentsSpec


def run_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "paddler_tui", *arguments],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_help_lists_the_subcommands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("balancer", "agent", "serve"):
        assert command in result.stdout


def test_version_prints_the_package_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"paddler-tui {package_version()}"
    assert package_version() != "0+unknown"


def test_balancer_defaults_are_paddlers() -> None:
    arguments = build_parser().parse_args(["balancer"])
    assert arguments.inference_addr == HostPort("127.0.0.1", 8061)
    assert arguments.management_addr == HostPort("127.0.0.1", 8060)
    assert arguments.compat_openai_addr is None
    assert arguments.state_database == "memory://"
    assert arguments.max_buffered_requests == 30
    assert arguments.buffered_request_timeout == 10000
    assert arguments.inference_item_timeout == 30000
    assert arguments.statsd_prefix == "paddler_"
    assert arguments.statsd_reporting_interval == 10000


def test_repeatable_cors_origins() -> None:
    arguments = build_parser().parse_args(
        [
            "balancer",
            "--inference-cors-allowed-host",
            "http://a",
            "--inference-cors-allowed-host",
            "http://b",
        ]
    )
    assert arguments.inference_cors_allowed_host == ["http://a", "http://b"]


def test_agent_requires_management_addr_and_slots() -> None:
    result = run_cli("agent", "--slots", "2")
    assert result.returncode == 2
    assert "--management-addr" in result.stderr
    result = run_cli("agent", "--management-addr", "127.0.0.1:1")
    assert result.returncode == 2
    assert "--slots" in result.stderr


@pytest.mark.parametrize("value", ["nohost", "host:notaport", "host:70000", ":80"])
def test_bad_addresses_are_rejected_with_a_reason(value: str) -> None:
    result = run_cli("agent", "--management-addr", value, "--slots", "1")
    assert result.returncode == 2
    assert "--management-addr" in result.stderr


def test_zero_slots_are_rejected() -> None:
    result = run_cli("agent", "--management-addr", "127.0.0.1:1", "--slots", "0")
    assert result.returncode == 2
    assert "must be at least 1" in result.stderr


def test_host_port_round_trips_ipv6() -> None:
    address = HostPort.parse("[::1]:8060")
    assert address == HostPort("::1", 8060)
    assert str(address) == "[::1]:8060"


def test_heartbeats_default_to_a_silent_link_found_within_ten_seconds() -> None:
    parser = build_parser()
    for command in (
        ["balancer"],
        ["serve"],
        ["agent", "--management-addr", "127.0.0.1:1", "--slots", "1"],
    ):
        beat = heartbeat(parser.parse_args(command))
        assert beat == Heartbeat(interval_ms=2000, timeout_ms=5000)
        assert beat.interval_ms + beat.timeout_ms <= 10_000


def test_heartbeat_flags_reach_the_balancer_and_the_local_agents() -> None:
    flags = ["--agent-heartbeat-interval", "250", "--agent-heartbeat-timeout", "750"]
    arguments = build_parser().parse_args(["serve", *flags])
    assert balancer_settings(arguments).agent_heartbeat == Heartbeat(
        interval_ms=250, timeout_ms=750
    )
    spec = LocalAgentsSpec(heartbeat=heartbeat(arguments))
    command = LocalAgents(spec, HostPort("127.0.0.1", 1), Path("/unused")).command(1)
    assert command[command.index("--agent-heartbeat-interval") + 1] == "250"
    assert command[command.index("--agent-heartbeat-timeout") + 1] == "750"


@pytest.mark.parametrize("value", ["0", "-5", "soon"])
def test_heartbeats_must_be_positive_milliseconds(value: str) -> None:
    result = run_cli("balancer", "--agent-heartbeat-timeout", value)
    assert result.returncode == 2
    assert "--agent-heartbeat-timeout" in result.stderr


def test_routing_defaults_to_prefix_aware_on_balancer_and_serve() -> None:
    parser = build_parser()
    for command in ("balancer", "serve"):
        assert balancer_settings(parser.parse_args([command])).routing == Routing("prefix-aware", 2)
        flags = [command, "--routing", "least-busy", "--routing-imbalance", "0"]
        assert balancer_settings(parser.parse_args(flags)).routing == Routing("least-busy", 0)


@pytest.mark.parametrize(
    ("flags", "complaint"),
    [(["--routing", "random"], "--routing"), (["--routing-imbalance", "-1"], "must not be")],
)
def test_bad_routing_flags_are_rejected(flags: list[str], complaint: str) -> None:
    result = run_cli("balancer", *flags)
    assert result.returncode == 2
    assert complaint in result.stderr


def test_help_says_routing_differs_from_paddler() -> None:
    result = run_cli("balancer", "--help")
    assert "unlike Paddler" in " ".join(result.stdout.split())


def test_the_prompt_cache_ram_defaults_to_llama_servers_and_reaches_the_local_agents() -> None:
    parser = build_parser()
    agent = ["agent", "--management-addr", "127.0.0.1:1", "--slots", "1"]
    assert parser.parse_args(agent).prompt_cache_ram == 8192
    assert parser.parse_args([*agent, "--prompt-cache-ram", "-1"]).prompt_cache_ram == -1
    assert parser.parse_args(["serve"]).prompt_cache_ram == 8192
    arguments = parser.parse_args(["serve", "--prompt-cache-ram", "0"])
    spec = LocalAgentsSpec(prompt_cache_ram_mib=arguments.prompt_cache_ram)
    command = LocalAgents(spec, HostPort("127.0.0.1", 1), Path("/unused")).command(1)
    assert command[command.index("--prompt-cache-ram") + 1] == "0"
    # What a local agent is started with, its parser reads back.
    assert parser.parse_args(command[3:]).prompt_cache_ram == 0


@pytest.mark.parametrize("value", ["-2", "lots"])
def test_a_prompt_cache_ram_below_minus_one_is_rejected(value: str) -> None:
    result = run_cli(
        "agent", "--management-addr", "127.0.0.1:1", "--slots", "1", "--prompt-cache-ram", value
    )
    assert result.returncode == 2
    assert "--prompt-cache-ram" in result.stderr
