"""A fake agent for the relay benches: tokens as fast as the protocol allows, time-stamped.

It registers with a balancer like an agent (the real codecs, the real agent socket) with plenty
of slots, and answers every ``ContinueFromRawPrompt`` with ``max_tokens`` content tokens and a
Done. Each token's text is the ``time.monotonic_ns()`` at which it was sent, so a client can
measure each token's latency (CLOCK_MONOTONIC is one clock for every process). The raw prompt is
the gap between tokens in microseconds: ``0`` floods, anything else paces.

The same tokens, framed as the balancer frames them, are served straight to clients on
``--direct-port`` (send ``{"tokens": N, "interval_us": I}``): the baseline without a balancer.

Run: ``python -m bench.token_source --management-addr HOST:PORT --direct-port PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from functools import partial

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from paddler_tui.protocol.agent_socket import (
    FromAgentNotificationEnvelope,
    FromAgentResponseEnvelope,
    RegisterAgent,
    ToAgentNotificationEnvelope,
    ToAgentRequestEnvelope,
    decode_balancer_to_agent_message,
    encode_agent_to_balancer_message,
)
from paddler_tui.protocol.envelope import ContinueFromRawPrompt, GeneratedToken, StopRespondingTo
from paddler_tui.protocol.generated_token import ContentToken, Done
from paddler_tui.protocol.inference_socket import ResponseEnvelope, encode_inference_server_message
from paddler_tui.protocol.usage import TokenUsage
from tests.support.agent_status import status

SLOTS = 128
STAMP = "0" * 19  # where a frame's timestamp goes; monotonic_ns has at most 19 digits

Send = Callable[[str], Awaitable[None]]


def frame_template(encode: Callable[[GeneratedToken], bytes]) -> tuple[str, str, str]:
    """The text around a token's stamp, and the Done frame, from the real encoder."""
    token = encode(GeneratedToken(value=ContentToken(value=STAMP))).decode()
    prefix, suffix = token.split(STAMP)
    done = encode(GeneratedToken(value=Done(usage=TokenUsage.zero()))).decode()
    return prefix, suffix, done


async def emit(send: Send, template: tuple[str, str, str], tokens: int, interval_us: int) -> None:
    prefix, suffix, done = template
    interval_s = interval_us / 1e6
    next_at = time.monotonic()
    for _ in range(tokens):
        if interval_s:
            next_at += interval_s
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await send(f"{prefix}{time.monotonic_ns()}{suffix}")
    await send(done)


def agent_frames(request_id: str) -> tuple[str, str, str]:
    return frame_template(
        lambda response: encode_agent_to_balancer_message(
            FromAgentResponseEnvelope(request_id=request_id, response=response)
        )
    )


def client_frames(request_id: str) -> tuple[str, str, str]:
    return frame_template(
        lambda response: encode_inference_server_message(
            ResponseEnvelope(generated_by="source", request_id=request_id, response=response)
        )
    )


async def serve_balancer(management_addr: str) -> None:
    url = f"ws://{management_addr}/api/v1/agent_socket/token-source"
    async with connect(url, max_size=None) as socket:
        register = RegisterAgent(
            name="token-source", slot_aggregated_status_snapshot=status(slots_total=SLOTS)
        )
        await socket.send(
            encode_agent_to_balancer_message(FromAgentNotificationEnvelope(value=register)).decode()
        )
        running: dict[str, asyncio.Task[None]] = {}

        def forget(key: str, _: asyncio.Task[None]) -> None:
            running.pop(key, None)

        async for frame in socket:
            message = decode_balancer_to_agent_message(frame)
            if isinstance(message, ToAgentRequestEnvelope) and isinstance(
                message.request, ContinueFromRawPrompt
            ):
                params = message.request.value
                task = asyncio.create_task(
                    emit(
                        socket.send,
                        agent_frames(message.id),
                        params.max_tokens,
                        int(params.raw_prompt),
                    )
                )
                running[message.id] = task
                task.add_done_callback(partial(forget, message.id))
            elif isinstance(message, ToAgentNotificationEnvelope) and isinstance(
                message.value, StopRespondingTo
            ):
                stopped = running.pop(message.value.value, None)
                if stopped is not None:
                    stopped.cancel()
                    await socket.send(agent_frames(message.value.value)[2])


async def serve_direct(connection: ServerConnection) -> None:
    request = json.loads(await connection.recv())
    await emit(connection.send, client_frames("direct"), request["tokens"], request["interval_us"])
    with contextlib.suppress(Exception):
        await connection.wait_closed()


async def main_async(management_addr: str, direct_port: int) -> None:
    async with serve(serve_direct, "127.0.0.1", direct_port, max_size=None):
        await serve_balancer(management_addr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--management-addr", required=True)
    parser.add_argument("--direct-port", type=int, required=True)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main_async(args.management_addr, args.direct_port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
