"""Aggregate generation throughput of the agent's engine, in this process, against
llama-cpp-python's ``Llama`` and llama.cpp's ``llama-server``, each in a process of its own.

The same four greedy 128-token requests run:

* through one :class:`Engine` with 4 slots, 1, 2 and 4 at a time (so 4, 2 and 1 waves). The
  engine is measured directly in this process (no agent, balancer or network; for those see
  ``bench/end_to_end.py``);
* one after another through the high-level ``Llama`` (the single-stream baseline) in a child
  process (:mod:`bench.llama_baseline`), with the same model, context size, batch size, threads
  and KV cache types;
* optionally through llama.cpp's ``llama-server`` (``--llama-server`` alone: the one
  :mod:`bench.llama_server` builds from the vendored llama.cpp; or ``--llama-server PATH``),
  1, 2 and 4 at a time over HTTP.

The setups take turns within each of ``--repeats`` rounds and the best round of each counts,
so a noisy moment on the machine hits all alike. Extra buffer types (weight repacking) are off
on every side only where the agent's probe says they crash on this host
(:mod:`bench.engine_bench`).

Aggregate tokens/s = generated tokens / wall time of the whole run (prompt processing
included). The prompts ask for long texts so that greedy decoding runs the full 128 tokens; the
run reports the generated counts, and any request that ends early (EOG) simply contributes
fewer tokens, so the rates stay honest. Penalties are off so both sides pick the argmax and the
outputs can be compared token for token.

Run: ``python -m bench.agent_throughput`` (writes ``bench/results/agent_throughput.json``).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from bench.common import take_turns
from bench.engine_bench import GREEDY, BenchModel, Generation, chat_prompt, loaded, options
from bench.llama_baseline import Child, child
from bench.llama_server import LlamaServer, build, llama_server, server_args
from paddler_tui.server.agent.engine.engine import Engine
from paddler_tui.server.agent.engine.types import GenerationJob

SLOTS = 4
CONCURRENCY = (1, 2, 4)
PROMPTS = (
    "Write a very long and detailed story about a lighthouse keeper who finds a message in a "
    "bottle. Describe every day of his life in detail.",
    "Write a long essay about the history of the Roman Empire, from its founding to its fall, "
    "covering every emperor.",
    "Explain in great detail, step by step, how a modern computer boots, from pressing the power "
    "button to the desktop appearing.",
    "Write a long travel guide to Japan covering every region, its food, culture, history and "
    "the best places to visit.",
)
CHATS = tuple(chat_prompt([("user", text)]) for text in PROMPTS)


@dataclass
class RunResult:
    concurrency: int
    seconds: float
    generated: list[int]
    texts: list[str]

    @property
    def tokens_per_second(self) -> float:
        return sum(self.generated) / self.seconds


def run_engine_wave(engine: Engine, prompts: list[list[int]], max_tokens: int) -> RunResult:
    """Submit all prompts at once and wait for every one to end."""
    done = threading.Semaphore(0)
    jobs = [Generation(done.release) for _ in prompts]
    started = time.perf_counter()
    for index, (tokens, sink) in enumerate(zip(prompts, jobs, strict=True)):
        job = GenerationJob(
            job_id=f"bench-{index}", prompt_tokens=tokens, max_tokens=max_tokens, sampling=GREEDY
        )
        engine.submit(job, sink)
    for _ in prompts:
        done.acquire()
    seconds = time.perf_counter() - started
    generated = [job.finished().generated_tokens for job in jobs]
    return RunResult(len(prompts), seconds, generated, [job.text for job in jobs])


def run_engine(engine: Engine, concurrency: int, max_tokens: int) -> RunResult:
    prompts = [engine.tokenize(chat, add_bos=True, parse_special=True) for chat in CHATS]
    seconds = 0.0
    generated: list[int] = []
    texts: list[str] = []
    for start in range(0, len(prompts), concurrency):
        wave = run_engine_wave(engine, prompts[start : start + concurrency], max_tokens)
        seconds += wave.seconds
        generated += wave.generated
        texts += wave.texts
    return RunResult(concurrency, seconds, generated, texts)


def run_llama_sequential(llama: Child, max_tokens: int) -> RunResult:
    answer = llama.call({"prompts": list(CHATS), "max_tokens": max_tokens})
    # The child's own timing of each completion: no pipe, no gaps between requests.
    return RunResult(1, sum(answer["seconds"]), answer["generated"], answer["texts"])


def run_server(url: str, concurrency: int, max_tokens: int) -> RunResult:
    """The same waves against llama.cpp's own server (continuous batching in C++)."""
    import httpx

    counts: list[int] = [0] * len(PROMPTS)
    texts: list[str] = [""] * len(PROMPTS)
    with httpx.Client(timeout=300) as client:

        def one(index: int) -> None:
            body = {
                "prompt": CHATS[index],
                "n_predict": max_tokens,
                "temperature": 0.0,
                "repeat_penalty": 1.0,
                "cache_prompt": False,
            }
            answer = client.post(f"{url}/completion", json=body).json()
            counts[index] = int(answer["tokens_predicted"])
            texts[index] = str(answer["content"])

        started = time.perf_counter()
        for start in range(0, len(PROMPTS), concurrency):
            threads = [
                threading.Thread(target=one, args=(index,))
                for index in range(start, min(start + concurrency, len(PROMPTS)))
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        seconds = time.perf_counter() - started
    return RunResult(concurrency, seconds, counts, texts)


@contextlib.contextmanager
def maybe_server(binary: str | None, model: BenchModel) -> Iterator[LlamaServer | None]:
    if binary is None:
        yield None
        return
    path = build() if binary == "build" else Path(shutil.which(binary) or binary)
    command = server_args(
        model.path,
        slots=SLOTS,
        threads=model.threads,
        context_size=model.context_size,
        cache_type="q8_0",  # the engine's (Paddler's) default KV cache type
        no_repack=not model.extra_buffers,
    )
    with (
        tempfile.TemporaryDirectory(prefix="bench-llama-server-") as directory,
        llama_server(
            [*command, "-b", str(model.n_batch)], log=Path(directory) / "log", binary=path
        ) as server,
    ):
        yield server


def best_of(runs: list[RunResult]) -> RunResult:
    return max(runs, key=lambda run: run.tokens_per_second)


def measure(
    model: BenchModel, args: argparse.Namespace
) -> tuple[RunResult, dict[int, RunResult], dict[str, RunResult] | None]:
    """The best run of each setup: Llama, the engine at 1, 2, 4 and llama-server at 1, 2, 4."""
    settings = model.engine_settings(slots=SLOTS)
    setup = model.llama_setup(kv_cache_dtype=settings.k_cache_dtype, warm_up=[CHATS[0]])
    with (
        loaded(settings) as engine,
        child("bench.llama_baseline:llama_completer", setup) as llama,
        maybe_server(args.llama_server, model) as server,
    ):
        run_engine(engine, SLOTS, 16)  # warm-ups (the child warmed up as it started)
        setups: dict[str, Callable[[], RunResult]] = {
            "llama": partial(run_llama_sequential, llama, args.tokens)
        }
        for concurrency in CONCURRENCY:
            setups[f"engine {concurrency}"] = partial(run_engine, engine, concurrency, args.tokens)
        if server is not None:
            run_server(server.url, SLOTS, 16)
            for concurrency in CONCURRENCY:
                setups[f"server {concurrency}"] = partial(
                    run_server, server.url, concurrency, args.tokens
                )
        runs = take_turns(args.repeats, setups)
    engine_runs = {c: best_of(runs[f"engine {c}"]) for c in CONCURRENCY}
    server_runs = (
        {str(c): best_of(runs[f"server {c}"]) for c in CONCURRENCY} if server is not None else None
    )
    return best_of(runs["llama"]), engine_runs, server_runs


def main(argv: list[str] | None = None) -> int:
    parser = options(
        __doc__.splitlines()[0] if __doc__ else None,
        "agent_throughput",
        context_size=2048,
        repeats=3,
    )
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument(
        "--llama-server",
        nargs="?",
        const="build",
        default=None,
        help="also llama-server: the built one (no PATH) or the binary at PATH",
    )
    args = parser.parse_args(argv)
    model = BenchModel.from_args(args)
    baseline, engine_runs, server_runs = measure(model, args)

    base_rate = baseline.tokens_per_second
    same_text = sum(
        a == b for a, b in zip(engine_runs[1].texts, baseline.texts, strict=True)
    ) / len(PROMPTS)
    model.print_header(f"{args.tokens} tokens/request")
    print(f"{'setup':<34}{'tokens':>8}{'seconds':>10}{'tok/s':>10}{'x base':>9}")
    rows = [("Llama (own process), sequential", baseline)] + [
        (f"engine (in-process), {c} concurrent", engine_runs[c]) for c in CONCURRENCY
    ]
    rows += [(f"llama-server, {c} concurrent", run) for c, run in (server_runs or {}).items()]
    for name, run in rows:
        print(
            f"{name:<34}{sum(run.generated):>8}{run.seconds:>10.2f}"
            f"{run.tokens_per_second:>10.1f}{run.tokens_per_second / base_rate:>9.2f}"
        )
    ratio_4 = engine_runs[4].tokens_per_second / base_rate
    ratio_1 = engine_runs[1].tokens_per_second / base_rate
    print(f"4 concurrent vs sequential baseline: {ratio_4:.2f}x (target >= 1.8x)")
    print(f"single stream vs baseline: {ratio_1:.3f} (target >= 0.95)")
    print(f"greedy texts identical to the baseline: {same_text:.0%}")

    model.write_report(
        args.output,
        tokens_per_request=args.tokens,
        requests=len(PROMPTS),
        repeats=args.repeats,
        baseline_sequential=_summary(baseline),
        engine={str(c): _summary(run) for c, run in engine_runs.items()},
        llama_server={c: _summary(run) for c, run in server_runs.items()} if server_runs else None,
        ratio_4_concurrent_vs_baseline=round(ratio_4, 3),
        ratio_single_vs_baseline=round(ratio_1, 3),
        greedy_texts_identical_fraction=same_text,
        median_engine_tokens_per_second=statistics.median(
            run.tokens_per_second for run in engine_runs.values()
        ),
    )
    return 0


def _summary(run: RunResult) -> dict[str, object]:
    summary = asdict(run)
    del summary["texts"]
    summary["tokens_per_second"] = round(run.tokens_per_second, 2)
    summary["seconds"] = round(run.seconds, 3)
    return summary


if __name__ == "__main__":
    raise SystemExit(main())
