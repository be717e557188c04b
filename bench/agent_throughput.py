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
on every side only where the agent's probe says they crash on this host.

Aggregate tokens/s = generated tokens / wall time of the whole run (prompt processing
included). The prompts ask for long texts so that greedy decoding runs the full 128 tokens; the
run reports the generated counts, and any request that ends early (EOG) simply contributes
fewer tokens, so the rates stay honest. Penalties are off so both sides pick the argmax and the
outputs can be compared token for token.

Run: ``python bench/agent_throughput.py`` (writes ``bench/results/agent_throughput.json``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import extra_buffers_verdict, machine, print_machine
from bench.llama_baseline import Child, child
from bench.llama_server import LlamaServer, build, llama_server, server_args
from paddler_tui.models import default_model_path
from paddler_tui.server.agent.engine.engine import Engine
from paddler_tui.server.agent.engine.model import default_thread_count
from paddler_tui.server.agent.engine.types import (
    EngineEvent,
    EngineSettings,
    EventSink,
    GenerationJob,
    JobFailed,
    JobFinished,
    SamplingSettings,
    TokenSampled,
)

RESULTS = Path(__file__).resolve().parent / "results" / "agent_throughput.json"
SLOTS = 4
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
GREEDY = SamplingSettings(
    temperature=0.0,
    top_k=80,
    top_p=0.8,
    min_p=0.05,
    penalty_last_n=0,
    penalty_repeat=1.0,
    penalty_frequency=0.0,
    penalty_presence=0.0,
)


def chat_prompt(text: str) -> str:
    return f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"


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
    pieces: list[list[str]] = [[] for _ in prompts]
    generated = [0] * len(prompts)
    failures: list[JobFailed] = []

    def sink_for(index: int) -> EventSink:
        # Called on the engine thread: record, never raise.
        def sink(event: EngineEvent) -> None:
            if isinstance(event, TokenSampled):
                pieces[index].append(event.piece)
                return
            if isinstance(event, JobFinished):
                generated[index] = event.generated_tokens
            else:
                failures.append(event)
            done.release()

        return sink

    started = time.perf_counter()
    for index, tokens in enumerate(prompts):
        job = GenerationJob(
            job_id=f"bench-{index}", prompt_tokens=tokens, max_tokens=max_tokens, sampling=GREEDY
        )
        engine.submit(job, sink_for(index))
    for _ in prompts:
        done.acquire()
    seconds = time.perf_counter() - started
    if failures:
        raise SystemExit(f"bench job failed: {failures[0]}")
    return RunResult(len(prompts), seconds, generated, ["".join(p) for p in pieces])


def run_engine(engine: Engine, concurrency: int, max_tokens: int) -> RunResult:
    prompts = [
        engine.tokenize(chat_prompt(text), add_bos=True, parse_special=True) for text in PROMPTS
    ]
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
    answer = llama.call(
        {"prompts": [chat_prompt(text) for text in PROMPTS], "max_tokens": max_tokens}
    )
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
                "prompt": chat_prompt(PROMPTS[index]),
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
def maybe_server(
    binary: str | None, model: str, args: argparse.Namespace, repack: bool
) -> Iterator[LlamaServer | None]:
    if binary is None:
        yield None
        return
    path = build() if binary == "build" else Path(shutil.which(binary) or binary)
    command = server_args(
        model,
        slots=SLOTS,
        threads=args.threads,
        context_size=args.context_size,
        cache_type="q8_0",  # the engine's (Paddler's) default KV cache type
        no_repack=not repack,
    )
    with (
        tempfile.TemporaryDirectory(prefix="bench-llama-server-") as directory,
        llama_server(
            [*command, "-b", str(args.n_batch)], log=Path(directory) / "log", binary=path
        ) as server,
    ):
        yield server


def best_of(runs: list[RunResult]) -> RunResult:
    return max(runs, key=lambda run: run.tokens_per_second)


def measure(
    settings: EngineSettings, args: argparse.Namespace, repack: bool
) -> tuple[RunResult, dict[int, RunResult], dict[str, RunResult] | None]:
    """The best run of each setup: Llama, the engine at 1, 2, 4 and llama-server at 1, 2, 4."""
    model = settings.model_path
    setup = {
        "model": model,
        "context_size": args.context_size,
        "n_batch": args.n_batch,
        "threads": args.threads,
        "kv_cache_dtype": settings.k_cache_dtype,
        "extra_buffers": repack,
        "warm_up": [chat_prompt(PROMPTS[0])],
    }
    engine = Engine.load(settings)
    baseline_runs: list[RunResult] = []
    engine_tries: dict[int, list[RunResult]] = {1: [], 2: [], 4: []}
    server_tries: dict[int, list[RunResult]] = {1: [], 2: [], 4: []}
    try:
        with (
            child("bench.llama_baseline:llama_completer", setup) as llama,
            maybe_server(args.llama_server, model, args, repack) as server,
        ):
            run_engine(engine, SLOTS, 16)  # warm-ups (the child warmed up as it started)
            if server is not None:
                run_server(server.url, SLOTS, 16)
            # Setups take turns within each repeat, so a noisy moment hits all alike.
            for _ in range(args.repeats):
                baseline_runs.append(run_llama_sequential(llama, args.tokens))
                for concurrency, tries in engine_tries.items():
                    tries.append(run_engine(engine, concurrency, args.tokens))
                if server is not None:
                    for concurrency, tries in server_tries.items():
                        tries.append(run_server(server.url, concurrency, args.tokens))
    finally:
        engine.close()
    server_runs = (
        {str(c): best_of(tries) for c, tries in server_tries.items()} if args.llama_server else None
    )
    engine_runs = {concurrency: best_of(tries) for concurrency, tries in engine_tries.items()}
    return best_of(baseline_runs), engine_runs, server_runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", default=None, help="GGUF path (default: SmolLM2-135M)")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=default_thread_count())
    parser.add_argument("--context-size", type=int, default=2048)
    parser.add_argument("--n-batch", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3, help="runs per setup; the best counts")
    parser.add_argument(
        "--llama-server",
        nargs="?",
        const="build",
        default=None,
        help="also llama-server: the built one (no PATH) or the binary at PATH",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    model = args.model or str(default_model_path())
    repack, repack_reason = extra_buffers_verdict(model)

    settings = EngineSettings(
        model_path=model,
        slots=SLOTS,
        context_size=args.context_size,
        n_batch=args.n_batch,
        n_threads=args.threads,
        use_extra_buffers=repack,
    )
    baseline, engine_runs, server_runs = measure(settings, args, repack)

    base_rate = baseline.tokens_per_second
    same_text = sum(
        a == b for a, b in zip(engine_runs[1].texts, baseline.texts, strict=True)
    ) / len(PROMPTS)
    print_machine()
    print(f"model {Path(model).name}, {args.threads} threads, {args.tokens} tokens/request")
    print(f"extra buffer types: {'on' if repack else 'off'} ({repack_reason})")
    print(f"{'setup':<34}{'tokens':>8}{'seconds':>10}{'tok/s':>10}{'x base':>9}")
    rows = [("Llama (own process), sequential", baseline)] + [
        (f"engine (in-process), {c} concurrent", engine_runs[c]) for c in (1, 2, 4)
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

    report = {
        "machine": machine(),
        "model": Path(model).name,
        "threads": args.threads,
        "context_size": args.context_size,
        "n_batch": args.n_batch,
        "tokens_per_request": args.tokens,
        "requests": len(PROMPTS),
        "repeats": args.repeats,
        "baseline_sequential": _summary(baseline),
        "engine": {str(c): _summary(run) for c, run in engine_runs.items()},
        "extra_buffers": {"enabled": repack, "reason": repack_reason},
        "llama_server": (
            {c: _summary(run) for c, run in server_runs.items()} if server_runs else None
        ),
        "ratio_4_concurrent_vs_baseline": round(ratio_4, 3),
        "ratio_single_vs_baseline": round(ratio_1, 3),
        "greedy_texts_identical_fraction": same_text,
        "median_engine_tokens_per_second": statistics.median(
            run.tokens_per_second for run in engine_runs.values()
        ),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


def _summary(run: RunResult) -> dict[str, object]:
    summary = asdict(run)
    del summary["texts"]
    summary["tokens_per_second"] = round(run.tokens_per_second, 2)
    summary["seconds"] = round(run.seconds, 3)
    return summary


if __name__ == "__main__":
    raise SystemExit(main())
