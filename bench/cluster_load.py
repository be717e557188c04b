"""32 concurrent chat requests over a real cluster of 2 agents x 2 slots, with SmolLM2 (issue 8).

Each request is a ``ContinueFromConversationHistory`` on its own inference socket, all sent at
once; each agent runs one llama.cpp thread, so the cluster uses the machine's 2 cores. The
baseline is the same load handed straight to one engine with the cluster's 4 slots and
2 threads, in a child process of its own (:mod:`bench.llama_baseline`; this process is the
cluster's client): the same prompts rendered by the agent's chat template code, the same
deterministic sampling, all submitted at once.

The two take turns in each of ``--rounds`` rounds (the cluster and the child stay loaded, the
one not measured is idle); the round with the most tokens/s of each counts.

Reported: requests/s and generated tokens/s (both over the wall time of the whole load), and
time to first token p50/p99 (from sending, or submitting, to the first token).
Run: ``python -m bench.cluster_load`` (writes bench/results/cluster_load.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from websockets.asyncio.client import connect

from bench.common import Row, cluster, extra_buffers_verdict, percentile, publish, take_turns
from bench.engine_bench import Generation
from bench.llama_baseline import Handler, Json, child
from paddler_tui.models import default_model_path
from paddler_tui.protocol.envelope import GeneratedToken
from paddler_tui.protocol.generated_token import Done, token_text
from paddler_tui.protocol.inference_socket import ResponseEnvelope, decode_inference_server_message
from paddler_tui.server.agent.chat_template import ChatTemplate
from paddler_tui.server.agent.engine.types import DEFAULT_PROMPT_CACHE_RAM_MIB, prompt_cache_bytes
from paddler_tui.server.agent.running_requests import sampling_settings
from paddler_tui.server.agent.state_applier import engine_settings
from tests.support.cluster import deterministic_state

if TYPE_CHECKING:
    from paddler_tui.server.agent.engine.engine import Engine

AGENTS = 2
SLOTS = 2
TOPICS = (
    "a lighthouse", "a dragon", "the sea", "a robot", "a city at night", "a forest", "the moon",
    "a river", "a library", "a storm", "a mountain", "a train", "a garden", "a desert",
    "a ship", "a castle", "a volcano", "an island", "a clock", "a bridge", "a market",
    "a snowfall", "a comet", "a violin", "a fox", "an old map", "a lantern", "a cave",
    "a festival", "a whale", "a kite", "a painter",
)  # fmt: skip


def messages(index: int) -> list[dict[str, str]]:
    return [
        {"role": "user", "content": f"Write a short story about {TOPICS[index % len(TOPICS)]}."}
    ]


@dataclass(frozen=True)
class Outcome:
    first_token_s: float
    tokens: int


@dataclass(frozen=True)
class LoadResult:
    seconds: float
    outcomes: list[Outcome]

    def summary(self) -> dict[str, float]:
        first = [o.first_token_s for o in self.outcomes]
        return {
            "requests_per_second": len(self.outcomes) / self.seconds,
            "tokens_per_second": sum(o.tokens for o in self.outcomes) / self.seconds,
            "ttft_p50_s": percentile(first, 0.5),
            "ttft_p99_s": percentile(first, 0.99),
            "seconds": self.seconds,
        }


async def one_request(url: str, index: int, max_tokens: int) -> Outcome:
    request = {
        "Request": {
            "id": f"load-{index}",
            "request": {
                "ContinueFromConversationHistory": {
                    "add_generation_prompt": True,
                    "conversation_history": messages(index),
                    "enable_thinking": False,
                    "max_tokens": max_tokens,
                }
            },
        }
    }
    async with connect(url, max_size=None) as socket:
        sent = time.perf_counter()
        await socket.send(json.dumps(request))
        first: float | None = None
        tokens = 0
        async for frame in socket:
            message = decode_inference_server_message(frame)
            if not (
                isinstance(message, ResponseEnvelope)
                and isinstance(message.response, GeneratedToken)
            ):
                raise RuntimeError(f"request {index} failed: {message}")
            result = message.response.value
            if isinstance(result, Done):
                assert first is not None
                return Outcome(first - sent, tokens)
            if token_text(result) is None:
                raise RuntimeError(f"request {index} failed: {result}")
            first = first or time.perf_counter()
            tokens += 1
    raise RuntimeError(f"request {index}: the socket closed before Done")


async def cluster_load(url: str, requests: int, max_tokens: int) -> LoadResult:
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(one_request(url, i, max_tokens) for i in range(requests)))
    return LoadResult(time.perf_counter() - started, list(outcomes))


def engine_loader(setup: Json) -> Handler:
    """In the child: one engine, warmed up; each request runs one load and answers its summary.

    Setup: threads, extra_buffers. Request: requests, max_tokens.
    """
    from paddler_tui.server.agent.engine.engine import Engine

    parameters = deterministic_state().inference_parameters
    settings = engine_settings(
        str(default_model_path()),
        parameters,
        slots=AGENTS * SLOTS,
        threads=setup["threads"],
        prompt_cache_ram=prompt_cache_bytes(DEFAULT_PROMPT_CACHE_RAM_MIB),
    )
    engine = Engine.load(replace(settings, use_extra_buffers=setup["extra_buffers"]))

    def handle(request: Json) -> Json:
        return engine_load(engine, request["requests"], request["max_tokens"]).summary()

    handle({"requests": AGENTS * SLOTS, "max_tokens": 8})  # warm-up
    return handle


def engine_load(engine: Engine, requests: int, max_tokens: int) -> LoadResult:
    from paddler_tui.server.agent.engine.types import GenerationJob

    parameters = deterministic_state().inference_parameters
    slots = AGENTS * SLOTS
    assert engine.chat_template is not None
    template = ChatTemplate.compile(engine.chat_template)
    finished = threading.Semaphore(0)
    sinks = [Generation(finished.release) for _ in range(requests)]

    def job(index: int) -> GenerationJob:
        prompt = template.render(
            messages=messages(index),
            add_generation_prompt=True,
            enable_thinking=False,
            tools=[],
            bos_token=engine.bos_token,
            eos_token=engine.eos_token,
        )
        return GenerationJob(
            job_id=f"load-{index}",
            prompt_tokens=engine.tokenize(prompt, add_bos=True, parse_special=True),
            max_tokens=max_tokens,
            sampling=sampling_settings(parameters),
        )

    # Every request arrives at once; the engine takes as many as it has slots, and each
    # one that ends lets the next waiting one in (what the balancer's buffer does).
    started = time.perf_counter()
    waiting = list(range(requests))
    for index in waiting[:slots]:
        engine.submit(job(index), sinks[index])
    del waiting[:slots]
    for _ in range(requests):
        finished.acquire()
        if waiting:
            index = waiting.pop(0)
            engine.submit(job(index), sinks[index])
    seconds = time.perf_counter() - started
    return LoadResult(seconds, [outcome(sink, started) for sink in sinks])


def outcome(sink: Generation, started: float) -> Outcome:
    generated = sink.finished().generated_tokens
    assert sink.first_token_at is not None, "a request without a token"
    return Outcome(sink.first_token_at - started, generated)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=64, help="max_tokens of each request")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each; the best counts")
    args = parser.parse_args(argv)
    repack, _ = extra_buffers_verdict(str(default_model_path()))

    setup = {"threads": AGENTS, "extra_buffers": repack}
    with cluster() as made, child("bench.cluster_load:engine_loader", setup) as engine:
        # Every request waits its turn: none may time out in the buffer.
        made.start(
            "--buffered-request-timeout", "600000", "--max-buffered-requests", str(args.requests),
            agents=AGENTS, slots=SLOTS, state=deterministic_state(),
        )  # fmt: skip
        url = made.b.inference_socket_url
        asyncio.run(cluster_load(url, AGENTS * SLOTS, 8))  # warm-up
        load = {"requests": args.requests, "max_tokens": args.tokens}

        def through_cluster() -> dict[str, float]:
            return asyncio.run(cluster_load(url, args.requests, args.tokens)).summary()

        runs = take_turns(
            args.rounds, {"cluster": through_cluster, "engine": lambda: engine.call(load)}
        )
    through = max(runs["cluster"], key=lambda run: run["tokens_per_second"])
    straight = max(runs["engine"], key=lambda run: run["tokens_per_second"])

    baseline = "(baseline: one engine, own process)"
    rows = [
        Row(f"requests/s {baseline}", through["requests_per_second"], "req/s",
            straight["requests_per_second"]),
        Row(f"generated tokens/s {baseline}", through["tokens_per_second"], "tokens/s",
            straight["tokens_per_second"]),
        Row(f"time to first token p50 {baseline}", through["ttft_p50_s"], "s",
            straight["ttft_p50_s"]),
        Row(f"time to first token p99 {baseline}", through["ttft_p99_s"], "s",
            straight["ttft_p99_s"]),
    ]  # fmt: skip
    publish(
        "cluster_load",
        f"{args.requests} concurrent chat requests, 2 agents x 2 slots, SmolLM2",
        {
            "settings": {
                "requests": args.requests,
                "max_tokens": args.tokens,
                "rounds": args.rounds,
            },
            "cluster": {"agents": AGENTS, "slots_each": SLOTS, "threads_each": 1, **through},
            "engine": {"slots": AGENTS * SLOTS, "threads": AGENTS, "process": "own", **straight},
            "rounds": runs,
        },
        rows,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
