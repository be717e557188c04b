"""Chat at cluster scale: 16 concurrent conversations x 10 turns on 2 agents x 2 slots (issue 15).

Every conversation is a growing greedy chat: each turn sends the whole history plus a new user
message, generates up to 40 tokens at temperature 0, and appends the answer. All conversations
start at once and each sends its next turn as soon as its previous answer ended, so 16 requests
compete for 4 slots all the time. Measured per turn: time to first token (from sending to the
first generated token, the wait for a slot included) p50/p95 over the conversations, and the
share of prompt tokens served from a cache, from each answer's own count.

Configurations, each in a fresh cluster (no cache survives from one run to the next):

* ours: a real balancer and 2 real agents x 2 slots, 1 llama.cpp thread each, so the cluster
  uses the machine's 2 cores as the peer does; the REST route
  ``POST /api/v1/continue_from_conversation_history`` (NDJSON), whose ``Done`` usage gives
  ``cached_prompt_tokens`` / ``prompt_tokens``. Four configurations: the balancer's
  ``--routing least-busy`` (Paddler's dispatch) or ``prefix-aware``, each with the agents'
  ``--prompt-cache-ram 0`` (no RAM prompt cache, Paddler's behaviour) or 8192 MiB. Every flag is
  passed explicitly, defaults included.
* the single-node peer: llama.cpp's ``llama-server -np 4 -t 2 --cache-ram 8192``, built from the
  llama.cpp that llama-cpp-python vendors (:mod:`bench.llama_server`), through
  ``POST /v1/chat/completions`` (streamed); its ``timings`` give the cached tokens
  (``cache_n``) and those it decoded (``prompt_n``).

Every side has 2048 context positions per slot and the default Q8_0 KV cache; llama-server gets
``--no-repack`` only where the agent's extra-buffers probe says repacking crashes on this host.
The configurations take turns in each of ``--rounds`` rounds; the percentiles pool every round.
The targets: at least 75% of the prompt tokens of turns 2+ from a cache, and a turn-10 TTFT
p50 no worse than llama-server's, with both features on (prefix-aware + RAM cache).

Run: ``python -m bench chat_sessions`` or ``python -m bench.chat_sessions --configs
least_busy,llama_server --conversations 4 --turns 3`` (writes bench/results/chat_sessions.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

import httpx

from bench.common import Row, cluster, extra_buffers_verdict, percentile, publish, take_turns
from bench.llama_server import build, build_info, llama_server, server_args
from paddler_tui.client.errors import ClientError
from paddler_tui.client.inference_http import InferenceHttpClient
from paddler_tui.client.monitor import monitor_updates
from paddler_tui.models import default_model_path
from paddler_tui.protocol.conversation import ConversationMessage
from paddler_tui.protocol.monitor import MonitorUpdate
from paddler_tui.protocol.requests import ContinueFromConversationHistoryParams
from paddler_tui.protocol.token_stream import Finished, TextPiece, read_message
from tests.support.cluster import deterministic_state

AGENTS = 2
SLOTS = 2
PEER_THREADS = 2
CONTEXT_PER_SLOT = 2048
RAM_CACHE_MIB = 8192
MAX_TOKENS = 40
SHARE_TARGET = 0.75
MONITOR_TIMEOUT_S = 5.0
# Every request waits for a slot behind up to 12 others: no buffer limit or timeout may end one.
BALANCER_FLAGS = (
    "--max-buffered-requests", "64",
    "--buffered-request-timeout", "600000",
    "--inference-item-timeout", "120000",
)  # fmt: skip
TOPICS = (
    "lighthouses", "volcanoes", "honeybees", "glaciers", "the printing press", "coral reefs",
    "steam engines", "the moon", "rainforests", "chess", "violins", "comets", "deserts",
    "bridges", "kites", "whales",
)  # fmt: skip
FOLLOW_UPS = (
    "Why does that matter to people today? Please answer in two or three sentences.",
    "Can you give me one concrete example of that, with a place or a date?",
    "What do people most often get wrong about this? Keep it short.",
    "How would you explain that to a ten-year-old who has never heard of it?",
    "What is one question scientists still argue about here, and why?",
    "Which book or museum would you suggest to learn more, and what would I find there?",
    "How has this changed over the last hundred years? Just the main change, please.",
    "What is the most surprising number or measurement connected with it?",
    "If I had one afternoon to see this for myself, what should I do?",
)  # fmt: skip


@dataclass(frozen=True)
class Ours:
    """One configuration of our cluster: the balancer's routing and the agents' RAM cache."""

    label: str
    routing: str
    prompt_cache_ram_mib: int

    @property
    def balancer_flags(self) -> tuple[str, ...]:
        return ("--routing", self.routing, *BALANCER_FLAGS)

    @property
    def agent_flags(self) -> tuple[str, ...]:
        return ("--prompt-cache-ram", str(self.prompt_cache_ram_mib))


OURS = {
    "least_busy": Ours("least-busy, no RAM cache (Paddler)", "least-busy", 0),
    "prefix_aware": Ours("prefix-aware, no RAM cache", "prefix-aware", 0),
    "ram_cache": Ours("least-busy + RAM cache", "least-busy", RAM_CACHE_MIB),
    "both": Ours("prefix-aware + RAM cache", "prefix-aware", RAM_CACHE_MIB),
}
PEER = "llama_server"
LABELS = {**{name: config.label for name, config in OURS.items()}, PEER: "llama-server"}
# Both features on: what the targets are for.
TARGETED = "both"


def user_message(conversation: int, turn: int) -> str:
    topic = TOPICS[conversation % len(TOPICS)]
    if turn == 0:
        return (
            f"I am preparing a short talk about {topic} for my reading club (talk {conversation})."
            f" Tell me in two sentences what {topic} are and why they are interesting."
        )
    return FOLLOW_UPS[(turn - 1) % len(FOLLOW_UPS)]


@dataclass(frozen=True)
class Answer:
    """One turn as its client saw it."""

    ttft_s: float
    prompt_tokens: int
    cached_prompt_tokens: int
    generated: int
    text: str


Ask = Callable[[list[dict[str, str]]], Awaitable[Answer]]


async def conversation(ask: Ask, index: int, turns: int) -> list[Answer]:
    history: list[dict[str, str]] = []
    answers: list[Answer] = []
    for turn in range(turns):
        history.append({"role": "user", "content": user_message(index, turn)})
        answer = await ask(history)
        history.append({"role": "assistant", "content": answer.text})
        answers.append(answer)
    return answers


async def sessions(ask: Ask, conversations: int, turns: int) -> list[list[Answer]]:
    """Every conversation at once; each list is one conversation's turns."""
    return list(await asyncio.gather(*(conversation(ask, i, turns) for i in range(conversations))))


def ours_ask(client: InferenceHttpClient) -> Ask:
    async def ask(history: list[dict[str, str]]) -> Answer:
        params = ContinueFromConversationHistoryParams(
            add_generation_prompt=True,
            conversation_history=[ConversationMessage(**message) for message in history],
            enable_thinking=False,
            max_tokens=MAX_TOKENS,
        )
        sent = time.perf_counter()
        first: float | None = None
        pieces: list[str] = []
        async for message in client.continue_from_conversation_history(params):
            event = read_message(message)
            if event is None:
                continue  # not part of a generation's stream
            if isinstance(event, TextPiece):
                first = first or time.perf_counter()
                pieces.append(event.text)
            elif isinstance(event, Finished) and first is not None:
                usage = event.usage
                return Answer(
                    first - sent,
                    usage.prompt_tokens,
                    usage.cached_prompt_tokens,
                    usage.completion_tokens,
                    "".join(pieces),
                )
            else:
                raise RuntimeError(f"ours failed: {message}")
        raise RuntimeError("ours: the stream ended before Done")

    return ask


def peer_ask(client: httpx.AsyncClient, url: str) -> Ask:
    async def ask(history: list[dict[str, str]]) -> Answer:
        body = {
            "messages": history,
            "max_tokens": MAX_TOKENS,
            "temperature": 0.0,
            "repeat_penalty": 1.0,
            "frequency_penalty": 0.0,
            "presence_penalty": 0.0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        sent = time.perf_counter()
        first: float | None = None
        pieces: list[str] = []
        timings: dict[str, Any] | None = None
        generated = 0
        async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                raise RuntimeError(f"llama-server: {(await response.aread()).decode()}")
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk: dict[str, Any] = json.loads(line.removeprefix("data: "))
                for choice in chunk.get("choices") or []:
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        first = first or time.perf_counter()
                        pieces.append(content)
                timings = chunk.get("timings") or timings
                generated = (chunk.get("usage") or {}).get("completion_tokens", generated)
        if first is None or timings is None:
            raise RuntimeError("llama-server: the stream ended without a token or timings")
        # prompt_n counts the prompt tokens it decoded; cache_n those it took from a cache.
        cached = int(timings["cache_n"])
        return Answer(
            first - sent, cached + int(timings["prompt_n"]), cached, generated, "".join(pieces)
        )

    return ask


@dataclass(frozen=True)
class Run:
    """One configuration's sessions, and what the balancer counted (ours only)."""

    seconds: float
    answers: list[list[Answer]]
    balancer: dict[str, object] | None = None


async def balancer_counts(management_addr: str) -> dict[str, object]:
    """The monitor socket's per-agent prompt-cache and routing totals for this run."""
    updates = cast(AsyncGenerator[MonitorUpdate, None], monitor_updates(management_addr))
    try:
        async with asyncio.timeout(MONITOR_TIMEOUT_S):
            update = await anext(updates)
    except (ClientError, TimeoutError, StopAsyncIteration) as error:
        return {"error": repr(error)}
    finally:
        await updates.aclose()
    return {
        agent.name or agent.id: {
            "prompt_tokens": agent.prompt_tokens,
            "cached_prompt_tokens": agent.cached_prompt_tokens,
            "routed": agent.routed.model_dump(),
        }
        for agent in update.agents
    }


async def ours_sessions(
    inference_addr: str, management_addr: str, conversations: int, turns: int
) -> Run:
    client = InferenceHttpClient(inference_addr)
    try:
        started = time.perf_counter()
        answers = await sessions(ours_ask(client), conversations, turns)
        seconds = time.perf_counter() - started
    finally:
        await client.aclose()
    return Run(seconds, answers, await balancer_counts(management_addr))


async def peer_sessions(url: str, conversations: int, turns: int) -> Run:
    # A connection per request: llama-server's HTTP threads (n_parallel + 2 here) each serve one
    # kept-alive connection until it idles out, so 16 kept-alive conversations would leave 10
    # waiting for a thread rather than for a slot; and a connection it closed after 5 s idle
    # would fail the next request sent on it.
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None), limits=limits) as client:
        started = time.perf_counter()
        answers = await sessions(peer_ask(client, url), conversations, turns)
        return Run(time.perf_counter() - started, answers)


def run_ours(config: Ours, args: argparse.Namespace) -> Run:
    with cluster() as made:
        made.start(
            *config.balancer_flags,
            agents=AGENTS,
            slots=SLOTS,
            state=deterministic_state(context_size=SLOTS * CONTEXT_PER_SLOT),
            agent_flags=config.agent_flags,
        )
        return asyncio.run(
            ours_sessions(
                made.b.inference_addr, made.b.management_addr, args.conversations, args.turns
            )
        )


def run_peer(command: Sequence[str], binary: Path, args: argparse.Namespace) -> Run:
    with (
        tempfile.TemporaryDirectory(prefix="paddler-bench-") as directory,
        llama_server(command, log=Path(directory) / "llama-server.log", binary=binary) as server,
    ):
        return asyncio.run(peer_sessions(server.url, args.conversations, args.turns))


@dataclass(frozen=True)
class TurnStats:
    turn: int
    ttft_p50_s: float
    ttft_p95_s: float
    prompt_tokens: int
    cached_prompt_tokens: int
    generated: int

    @property
    def cache_share(self) -> float:
        return self.cached_prompt_tokens / self.prompt_tokens if self.prompt_tokens else 0.0


def turn_stats(runs: list[Run], turns: int) -> list[TurnStats]:
    """Per turn, over every conversation of every round."""
    stats: list[TurnStats] = []
    for turn in range(turns):
        answers = [chat[turn] for run in runs for chat in run.answers]
        ttfts = [answer.ttft_s for answer in answers]
        stats.append(
            TurnStats(
                turn + 1,
                percentile(ttfts, 0.5),
                percentile(ttfts, 0.95),
                sum(answer.prompt_tokens for answer in answers),
                sum(answer.cached_prompt_tokens for answer in answers),
                sum(answer.generated for answer in answers),
            )
        )
    return stats


def later_turns_share(stats: list[TurnStats]) -> float:
    """The share of the prompt tokens of turns 2+ that a cache held."""
    later = stats[1:] or stats
    prompt = sum(turn.prompt_tokens for turn in later)
    return sum(turn.cached_prompt_tokens for turn in later) / prompt if prompt else 0.0


def print_turns(stats: dict[str, list[TurnStats]]) -> None:
    names = list(stats)
    print("\nper turn: TTFT p50 / p95 (s), share of prompt tokens from a cache")
    print("turn" + "".join(f"  {name[:22]:>22}" for name in names))
    for index in range(len(next(iter(stats.values())))):
        cells = [
            f"{turn.ttft_p50_s:5.2f} /{turn.ttft_p95_s:5.2f} {turn.cache_share:4.0%}"
            for turn in (stats[name][index] for name in names)
        ]
        print(f"{index + 1:>4}" + "".join(f"  {cell:>22}" for cell in cells))


def table(stats: dict[str, list[TurnStats]], turns: int) -> list[Row]:
    peer = stats.get(PEER)
    peer_share = later_turns_share(peer) if peer else None
    peer_last = peer[-1].ttft_p50_s if peer else None
    rows: list[Row] = []
    for name, per_turn in stats.items():
        label = LABELS[name]
        targeted = name == TARGETED
        share = later_turns_share(per_turn)
        last = per_turn[-1]
        rows.append(
            Row(f"prompt tokens from a cache, turns 2-{turns}, {label}", 100 * share, "%",
                None if name == PEER or peer_share is None else 100 * peer_share,
                f">= {SHARE_TARGET:.0%}" if targeted else "",
                share >= SHARE_TARGET if targeted else None)
        )  # fmt: skip
        judged = targeted and peer_last is not None
        rows.append(
            Row(f"turn-{turns} TTFT p50, {label}", last.ttft_p50_s, "s",
                None if name == PEER else peer_last,
                "<= llama-server" if judged else "",
                last.ttft_p50_s <= peer_last if judged and peer_last is not None else None)
        )  # fmt: skip
        rows.append(Row(f"turn-{turns} TTFT p95, {label}", last.ttft_p95_s, "s"))
    return rows


def configs_argument(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(LABELS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown configurations {unknown}; known: {', '.join(LABELS)}"
        )
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", default=None, help="GGUF path (default: SmolLM2-135M)")
    parser.add_argument(
        "--configs",
        type=configs_argument,
        default=list(LABELS),
        help=f"comma-separated (default: all, in this order): {','.join(LABELS)}",
    )
    parser.add_argument("--conversations", type=int, default=16)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1, help="runs per configuration, pooled")
    args = parser.parse_args(argv)
    model = args.model or str(default_model_path())
    repack, repack_reason = extra_buffers_verdict(model)
    print(f"extra buffer types (weight repacking): {'on' if repack else 'off'}: {repack_reason}")
    peer_command = [
        *server_args(
            model,
            slots=AGENTS * SLOTS,
            threads=PEER_THREADS,
            context_size=AGENTS * SLOTS * CONTEXT_PER_SLOT,
            cache_type="q8_0",
            no_repack=not repack,
        ),
        *("--cache-ram", str(RAM_CACHE_MIB)),
    ]
    binary = build() if PEER in args.configs else None

    def setup(name: str) -> Callable[[], Run]:
        if name == PEER:
            assert binary is not None
            return partial(run_peer, peer_command, binary, args)
        return partial(run_ours, OURS[name], args)

    def timed(name: str, run: Callable[[], Run]) -> Run:
        result = run()
        share = later_turns_share(turn_stats([result], args.turns))
        print(f"{LABELS[name]}: {result.seconds:.1f} s, turns 2+ from a cache {share:.0%}")
        return result

    runs = take_turns(
        args.rounds, {name: partial(timed, name, setup(name)) for name in args.configs}
    )
    stats = {name: turn_stats(tries, args.turns) for name, tries in runs.items()}
    print_turns(stats)
    publish(
        "chat_sessions",
        f"{args.conversations} conversations x {args.turns} turns, {AGENTS} agents x {SLOTS} "
        f"slots x 1 thread vs llama-server -np {AGENTS * SLOTS} -t {PEER_THREADS}",
        {
            "model": Path(model).name,
            "settings": {
                "conversations": args.conversations,
                "turns": args.turns,
                "rounds": args.rounds,
                "max_tokens": MAX_TOKENS,
                "temperature": 0.0,
                "agents": AGENTS,
                "slots_per_agent": SLOTS,
                "threads_per_agent": 1,
                "context_per_slot": CONTEXT_PER_SLOT,
                "kv_cache": "Q8_0",
                "note": "the cluster's 2 agents x 1 thread use the same 2 cores as the peer",
            },
            "extra_buffers": {"enabled": repack, "reason": repack_reason},
            "configs": {
                name: (
                    {"label": LABELS[name], "command": peer_command, "build": build_info()}
                    if name == PEER
                    else {
                        "label": LABELS[name],
                        "balancer_flags": list(OURS[name].balancer_flags),
                        "agent_flags": list(OURS[name].agent_flags),
                    }
                )
                for name in args.configs
            },
            "results": {
                name: {
                    "cache_share_turns_2_plus": round(later_turns_share(per_turn), 4),
                    "turns": [
                        {
                            "turn": turn.turn,
                            "ttft_p50_s": round(turn.ttft_p50_s, 4),
                            "ttft_p95_s": round(turn.ttft_p95_s, 4),
                            "prompt_tokens": turn.prompt_tokens,
                            "cached_prompt_tokens": turn.cached_prompt_tokens,
                            "cache_share": round(turn.cache_share, 4),
                            "generated_tokens": turn.generated,
                        }
                        for turn in per_turn
                    ],
                    "seconds": [round(run.seconds, 2) for run in runs[name]],
                    "balancer_counts": [run.balancer for run in runs[name] if run.balancer],
                }
                for name, per_turn in stats.items()
            },
        },
        table(stats, args.turns),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
