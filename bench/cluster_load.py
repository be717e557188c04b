"""32 concurrent chat requests over a real cluster of 2 agents x 2 slots, with SmolLM2 (issue 8).

Each request is a ``ContinueFromConversationHistory`` on its own inference socket, all sent at
once; each agent runs one llama.cpp thread, so the cluster uses the machine's 2 cores. The
baseline is the same load handed straight to one engine in this process with the cluster's
4 slots and 2 threads: the same prompts rendered by the agent's chat template code, the same
deterministic sampling, all submitted at once.

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
from dataclasses import dataclass

from websockets.asyncio.client import connect

from bench.common import Row, cluster, percentile, print_table, write_results
from paddler_tui.models import default_model_path
from paddler_tui.protocol.envelope import GeneratedToken
from paddler_tui.protocol.generated_token import Done, token_text
from paddler_tui.protocol.inference_socket import ResponseEnvelope, decode_inference_server_message
from paddler_tui.server.agent.chat_template import ChatTemplate
from paddler_tui.server.agent.inference_slots import sampling_settings
from paddler_tui.server.agent.state_applier import engine_settings
from tests.balancer.cluster import deterministic_state

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


def engine_load(requests: int, max_tokens: int, threads: int) -> LoadResult:
    from paddler_tui.server.agent.engine import Engine
    from paddler_tui.server.agent.engine_types import (
        EngineEvent,
        EventSink,
        GenerationJob,
        JobFinished,
        TokenSampled,
    )

    parameters = deterministic_state().inference_parameters
    settings = engine_settings(
        str(default_model_path()), parameters, slots=AGENTS * SLOTS, threads=threads
    )
    engine = Engine.load(settings)
    try:
        assert engine.chat_template is not None
        template = ChatTemplate.compile(engine.chat_template)
        finished = threading.Semaphore(0)
        first: dict[int, float] = {}
        generated: dict[int, int] = {}
        failures: list[object] = []

        def sink_for(index: int) -> EventSink:
            def sink(event: EngineEvent) -> None:  # the engine thread: record, never raise
                if isinstance(event, TokenSampled):
                    first.setdefault(index, time.perf_counter())
                    return
                if isinstance(event, JobFinished):
                    generated[index] = event.generated_tokens
                else:
                    failures.append(event)
                finished.release()

            return sink

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
        for index in waiting[: settings.slots]:
            engine.submit(job(index), sink_for(index))
        del waiting[: settings.slots]
        for _ in range(requests):
            finished.acquire()
            if waiting:
                index = waiting.pop(0)
                engine.submit(job(index), sink_for(index))
        seconds = time.perf_counter() - started
        if failures:
            raise RuntimeError(f"an engine job failed: {failures[0]}")
        outcomes = [Outcome(first[i] - started, generated[i]) for i in range(requests)]
        return LoadResult(seconds, outcomes)
    finally:
        engine.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=64, help="max_tokens of each request")
    args = parser.parse_args(argv)

    with cluster() as made:
        # Every request waits its turn: none may time out in the buffer.
        made.start(
            "--buffered-request-timeout", "600000", "--max-buffered-requests", str(args.requests),
            agents=AGENTS, slots=SLOTS, state=deterministic_state(),
        )  # fmt: skip
        url = made.b.inference_socket_url
        asyncio.run(cluster_load(url, AGENTS * SLOTS, 8))  # warm-up
        through = asyncio.run(cluster_load(url, args.requests, args.tokens)).summary()
    engine_load(AGENTS * SLOTS, 8, AGENTS)  # warm-up
    straight = engine_load(args.requests, args.tokens, AGENTS).summary()

    rows = [
        Row("requests/s (baseline: one engine)", through["requests_per_second"], "req/s",
            straight["requests_per_second"]),
        Row("generated tokens/s (baseline: one engine)", through["tokens_per_second"],
            "tokens/s", straight["tokens_per_second"]),
        Row("time to first token p50 (baseline: one engine)", through["ttft_p50_s"], "s",
            straight["ttft_p50_s"]),
        Row("time to first token p99 (baseline: one engine)", through["ttft_p99_s"], "s",
            straight["ttft_p99_s"]),
    ]  # fmt: skip
    path = write_results(
        "cluster_load",
        {
            "settings": {"requests": args.requests, "max_tokens": args.tokens},
            "cluster": {"agents": AGENTS, "slots_each": SLOTS, "threads_each": 1, **through},
            "engine": {"slots": AGENTS * SLOTS, "threads": AGENTS, **straight},
        },
        rows,
    )
    print_table(f"{args.requests} concurrent chat requests, 2 agents x 2 slots, SmolLM2", rows)
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
