"""End to end against llama.cpp's own server: four greedy 128-token prompts, one at a time and
four at once (issue 12).

Every side runs in a process of its own, with the same model, 2 threads, an F16 KV cache and
4 slots of CTX/4 positions each:

* ours: a real balancer and one real agent (``--slots 4 --threads 2``, F16 K and V through
  the desired state's inference parameters), through the REST route
  ``POST /api/v1/continue_from_raw_prompt`` (NDJSON) and through the inference socket, both
  with :mod:`paddler_tui.client`;
* ``llama-server`` built from the llama.cpp that the installed llama-cpp-python vendors
  (:mod:`bench.llama_server`), ``POST /completion`` with ``stream: true``;
* llama-cpp-python's ``Llama`` in a child process (:mod:`bench.llama_baseline`), the prompts
  one after another only: ``Llama`` decodes one sequence at a time, so it has no 4-concurrent
  figure.

Raw prompts on every side, so the work is the same: no chat template, greedy, penalties off.
The prompts are counting sequences, which greedy decoding continues well past 128 tokens, and
each timed run opens its prompts with a number of its own, so no side reuses a cached prompt
from an earlier run. Every side's generated token counts (streamed and as the server reports
them) are checked against 128 and reported. Tokens/s = generated tokens / wall time of the
run (prompt processing and, for the servers, HTTP/WebSocket included), measured by this
process as a client.

The sides take turns (ours REST, llama-server, ``Llama``, ours socket) in each of ``--rounds``
rounds, after a warm-up request on each server; the best round of each counts. ``llama-server``
gets ``--no-repack`` (and ``Llama`` no extra buffer types) only where the agent's extra-buffers
probe says they crash on this host.

Run: ``python -m bench end_to_end`` (writes bench/results/end_to_end.json).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.common import Row, cluster, extra_buffers_verdict, publish
from bench.engine_bench import BenchModel
from bench.llama_baseline import Child, child
from bench.llama_server import build, build_info, llama_server, server_args
from paddler_tui.client.inference_http import InferenceHttpClient
from paddler_tui.client.inference_socket import InferenceSocket
from paddler_tui.models import default_model_path
from paddler_tui.protocol.envelope import ContinueFromRawPrompt, GeneratedToken
from paddler_tui.protocol.generated_token import Done, token_text
from paddler_tui.protocol.inference_socket import InferenceServerMessage, ResponseEnvelope
from paddler_tui.protocol.requests import ContinueFromRawPromptParams
from tests.support.cluster import deterministic_state

# Each prompt counts up by its step from a start of its own; greedy decoding keeps counting, so
# every reply runs the full 128 tokens. Words ("List 7: ...") let the model drift into prose and
# end early now and then; bare numbers do not.
STEPS = (1, 2, 5, 10)
SEED_NUMBERS = 8
WARM_UP_TOKENS = 16
TARGET = 0.95
PATHS = ("ours_rest", "llama_server", "llama", "ours_socket")
LABELS = {
    "ours_rest": "ours REST",
    "ours_socket": "ours socket",
    "llama_server": "llama-server",
    "llama": "Llama own process",
}
# Table notes; Llama has no 4-concurrent row: it decodes one sequence at a time.
NOTES = {
    "ours_rest": "(baseline: llama-server)",
    "ours_socket": "(baseline: llama-server)",
    "llama": "(no 4-concurrent)",
}
_nonces = itertools.count(1)


def prompts() -> list[str]:
    """Four prompts that start with numbers no earlier run's did, so no side reuses a prompt
    it has cached (the first digits already differ)."""
    nonce = next(_nonces)
    return [
        ", ".join(str(1000 * (len(STEPS) * nonce + index) + step * k) for k in range(SEED_NUMBERS))
        + ","
        for index, step in enumerate(STEPS)
    ]


@dataclass(frozen=True)
class Reply:
    streamed: int  # tokens that arrived
    reported: int  # the server's own count
    text: str


@dataclass(frozen=True)
class Run:
    seconds: float
    replies: list[Reply]

    @property
    def generated(self) -> int:
        return sum(reply.streamed for reply in self.replies)

    @property
    def tokens_per_second(self) -> float:
        return self.generated / self.seconds

    def summary(self) -> dict[str, object]:
        return {
            "tokens_per_second": round(self.tokens_per_second, 2),
            "seconds": round(self.seconds, 3),
            "streamed": [reply.streamed for reply in self.replies],
            "reported": [reply.reported for reply in self.replies],
        }


Ask = Callable[[str, int], Awaitable[Reply]]


async def timed(ask: Ask, texts: Sequence[str], max_tokens: int, concurrent: bool) -> Run:
    started = time.perf_counter()
    if concurrent:
        replies = list(await asyncio.gather(*(ask(text, max_tokens) for text in texts)))
    else:
        replies = [await ask(text, max_tokens) for text in texts]
    return Run(time.perf_counter() - started, replies)


async def ours_reply(messages: AsyncIterable[InferenceServerMessage]) -> Reply:
    pieces: list[str] = []
    async for message in messages:
        if not (
            isinstance(message, ResponseEnvelope) and isinstance(message.response, GeneratedToken)
        ):
            raise RuntimeError(f"ours failed: {message}")
        result = message.response.value
        if isinstance(result, Done):
            return Reply(len(pieces), result.usage.completion_tokens, "".join(pieces))
        piece = token_text(result)
        if piece is None:
            raise RuntimeError(f"ours failed: {result}")
        pieces.append(piece)
    raise RuntimeError("ours: the stream ended before Done")


def ours_rest(client: InferenceHttpClient) -> Ask:
    async def ask(prompt: str, max_tokens: int) -> Reply:
        params = ContinueFromRawPromptParams(raw_prompt=prompt, max_tokens=max_tokens)
        return await ours_reply(client.continue_from_raw_prompt(params))

    return ask


def ours_socket(socket: InferenceSocket) -> Ask:
    async def ask(prompt: str, max_tokens: int) -> Reply:
        params = ContinueFromRawPromptParams(raw_prompt=prompt, max_tokens=max_tokens)
        return await ours_reply(await socket.request(ContinueFromRawPrompt(value=params)))

    return ask


def llama_server_ask(client: httpx.AsyncClient, url: str) -> Ask:
    async def ask(prompt: str, max_tokens: int) -> Reply:
        body = {
            "prompt": prompt,
            "n_predict": max_tokens,
            "temperature": 0.0,
            "repeat_penalty": 1.0,
            "frequency_penalty": 0.0,
            "presence_penalty": 0.0,
            "stream": True,
        }
        pieces: list[str] = []
        streamed = 0
        async with client.stream("POST", f"{url}/completion", json=body) as response:
            if response.status_code != 200:
                raise RuntimeError(f"llama-server: {(await response.aread()).decode()}")
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                chunk: dict[str, Any] = json.loads(line.removeprefix("data: "))
                pieces.append(chunk.get("content", ""))
                streamed += len(chunk.get("tokens") or [])
                if chunk.get("stop"):
                    return Reply(streamed, int(chunk["tokens_predicted"]), "".join(pieces))
        raise RuntimeError("llama-server: the stream ended without stop")

    return ask


def llama_run(llama: Child, max_tokens: int) -> Run:
    answer = llama.call({"prompts": prompts(), "max_tokens": max_tokens})
    # Llama's own timing of each completion: no client, no gaps between requests.
    replies = [
        Reply(count, count, text)
        for count, text in zip(answer["generated"], answer["texts"], strict=True)
    ]
    return Run(sum(answer["seconds"]), replies)


async def measure(
    asks: dict[str, Ask], llama: Child, args: argparse.Namespace
) -> dict[str, dict[str, list[Run]]]:
    """Every path and mode, ``rounds`` times, the paths taking turns."""
    for name, ask in asks.items():
        print(f"warm-up: {LABELS[name]}", flush=True)
        await timed(ask, prompts(), WARM_UP_TOKENS, concurrent=True)
    runs: dict[str, dict[str, list[Run]]] = {
        path: {"single": [], "concurrent": []} for path in PATHS
    }
    for round_ in range(1, args.rounds + 1):
        for path in PATHS:
            if path == "llama":
                run = await asyncio.to_thread(llama_run, llama, args.tokens)
                runs[path]["single"].append(run)
                print(
                    f"round {round_}: {LABELS[path]:<24} single {run.tokens_per_second:7.1f}",
                    flush=True,
                )
                continue
            single = await timed(asks[path], prompts(), args.tokens, concurrent=False)
            both = await timed(asks[path], prompts(), args.tokens, concurrent=True)
            runs[path]["single"].append(single)
            runs[path]["concurrent"].append(both)
            print(
                f"round {round_}: {LABELS[path]:<24} single {single.tokens_per_second:7.1f}"
                f"   4-concurrent {both.tokens_per_second:7.1f} tokens/s",
                flush=True,
            )
    return runs


async def run_clients(
    inference_addr: str, server_url: str, llama: Child, args: argparse.Namespace
) -> dict[str, dict[str, list[Run]]]:
    rest = InferenceHttpClient(inference_addr)
    socket = await InferenceSocket.connect(inference_addr)
    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None)) as http:
            asks = {
                "ours_rest": ours_rest(rest),
                "ours_socket": ours_socket(socket),
                "llama_server": llama_server_ask(http, server_url),
            }
            return await measure(asks, llama, args)
    finally:
        await socket.close()
        await rest.aclose()


def best(runs: list[Run]) -> Run:
    return max(runs, key=lambda run: run.tokens_per_second)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", default=None, help="GGUF path (default: SmolLM2-135M)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per side; the best counts")
    parser.add_argument("--tokens", type=int, default=128, help="generated tokens per prompt")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--context-size", type=int, default=2048, help="all slots together")
    args = parser.parse_args(argv)
    model = args.model or str(default_model_path())
    binary = build()
    repack, repack_reason = extra_buffers_verdict(model)
    print(f"extra buffer types (weight repacking): {'on' if repack else 'off'}: {repack_reason}")

    with cluster() as made:
        made.start_balancer()
        state = deterministic_state(
            k_cache_dtype="F16", v_cache_dtype="F16", context_size=args.context_size
        )
        made.put_state(state)
        made.start_agent(slots=args.slots, threads=args.threads)
        made.wait_for_agents(1, slots_each=args.slots)
        command = server_args(
            model,
            slots=args.slots,
            threads=args.threads,
            context_size=args.context_size,
            cache_type="f16",
            no_repack=not repack,
        )
        setup = BenchModel(
            path=model,
            threads=args.threads,
            context_size=args.context_size,
            n_batch=state.inference_parameters.n_batch,
            extra_buffers=repack,
            extra_buffers_reason=repack_reason,
        ).llama_setup(kv_cache_dtype="F16", warm_up=prompts()[:1])
        with (
            llama_server(command, log=made.directory / "llama-server.log", binary=binary) as server,
            child("bench.llama_baseline:llama_completer", setup) as llama,
        ):
            runs = asyncio.run(run_clients(made.b.inference_addr, server.url, llama, args))

    bests = {
        path: {mode: best(tries) for mode, tries in modes.items() if tries}
        for path, modes in runs.items()
    }
    baseline = bests["llama_server"]
    rows: list[Row] = []
    ratios: dict[str, float] = {}
    for mode, label in (("single", "single-stream"), ("concurrent", "4-concurrent")):
        for path in ("ours_rest", "ours_socket", "llama"):
            if mode in bests[path]:
                rows.append(
                    Row(f"{label} tokens/s, {LABELS[path]} {NOTES[path]}",
                        bests[path][mode].tokens_per_second, "tokens/s",
                        baseline[mode].tokens_per_second)
                )  # fmt: skip
    for mode, label in (("single", "single-stream"), ("concurrent", "4-concurrent")):
        for path in ("ours_rest", "ours_socket"):
            ratio = bests[path][mode].tokens_per_second / baseline[mode].tokens_per_second
            ratios[f"{path}_{mode}"] = round(ratio, 3)
            rows.append(
                Row(f"ratio {LABELS[path]} / llama-server, {label}", ratio, "x",
                    target=f">= {TARGET}x", met=ratio >= TARGET)
            )  # fmt: skip
    counts_ok = all(
        reply.streamed == reply.reported == args.tokens
        for modes in runs.values()
        for tries in modes.values()
        for run in tries
        for reply in run.replies
    )
    publish(
        "end_to_end",
        f"4 raw prompts x {args.tokens} greedy tokens, {args.threads} threads, F16 KV, "
        f"best of {args.rounds}",
        {
            "model": Path(model).name,
            "settings": {
                "prompts": f"{SEED_NUMBERS} numbers counting up by {STEPS}, new starts per run",
                "tokens_per_prompt": args.tokens,
                "rounds": args.rounds,
                "threads": args.threads,
                "slots": args.slots,
                "context_size": args.context_size,
                "kv_cache": "F16",
            },
            "extra_buffers": {"enabled": repack, "reason": repack_reason},
            "llama_server": {"command": list(server.command), "build": build_info()},
            "every_reply_generated_exactly": counts_ok,
            "best": {
                path: {mode: run.summary() for mode, run in modes.items()}
                for path, modes in bests.items()
            },
            "rounds": {
                path: {mode: [run.summary() for run in tries] for mode, tries in modes.items()}
                for path, modes in runs.items()
            },
            "ratios": ratios,
        },
        rows,
    )
    counts = "every reply" if counts_ok else "NOT every reply"
    print(f"{counts} generated exactly {args.tokens} tokens (streamed and reported)")
    return 0 if counts_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
