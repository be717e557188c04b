"""Aggregate generation throughput of the agent engine against llama-cpp-python's ``Llama``.

The same four greedy 128-token requests run:

* through one :class:`Engine` with 4 slots, 1, 2 and 4 at a time (so 4, 2 and 1 waves);
* one after another through the high-level ``Llama`` (the single-stream baseline), with the
  same model, context size, batch size, threads and KV cache types;
* optionally through a llama.cpp ``llama-server`` binary (``--llama-server PATH``), 1, 2 and 4
  at a time over HTTP.

Aggregate tokens/s = generated tokens / wall time of the whole run (prompt processing
included). The prompts ask for long texts so that greedy decoding runs the full 128 tokens; the
run reports the generated counts, and any request that ends early (EOG) simply contributes
fewer tokens, so the rates stay honest. Penalties are off so both sides pick the argmax and the
outputs can be compared token for token.

Run: ``python bench/agent_throughput.py`` (writes ``bench/results/agent_throughput.json``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine
from paddler_tui.models import default_model_path
from paddler_tui.server.agent.engine import Engine
from paddler_tui.server.agent.engine_model import KV_CACHE_DTYPES, default_thread_count
from paddler_tui.server.agent.engine_types import (
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


def run_llama_sequential(llama: object, max_tokens: int) -> RunResult:
    seconds = 0.0
    generated: list[int] = []
    texts: list[str] = []
    for text in PROMPTS:
        started = time.perf_counter()
        completion = llama.create_completion(  # type: ignore[attr-defined]
            chat_prompt(text),
            max_tokens=max_tokens,
            temperature=0.0,
            repeat_penalty=1.0,
            frequency_penalty=0.0,
            presence_penalty=0.0,
        )
        seconds += time.perf_counter() - started
        generated.append(int(completion["usage"]["completion_tokens"]))
        texts.append(str(completion["choices"][0]["text"]))
    return RunResult(1, seconds, generated, texts)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_llama_server(
    binary: str, model: str, args: argparse.Namespace, max_tokens: int
) -> dict[str, float]:
    """The same waves against llama.cpp's own server (continuous batching in C++)."""
    import httpx

    port = free_port()
    command = [
        binary,
        *("-m", model, "-c", str(args.context_size), "-np", str(SLOTS)),
        *("-t", str(args.threads), "-tb", str(args.threads), "-b", str(args.n_batch)),
        *("-ctk", "q8_0", "-ctv", "q8_0", "--port", str(port), "--host", "127.0.0.1"),
    ]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=300) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get(f"{url}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("llama-server did not become healthy")
                time.sleep(0.2)

            def one(text: str, out: list[int]) -> None:
                body = {
                    "prompt": chat_prompt(text),
                    "n_predict": max_tokens,
                    "temperature": 0.0,
                    "repeat_penalty": 1.0,
                    "cache_prompt": False,
                }
                response = client.post(f"{url}/completion", json=body)
                out.append(int(response.json()["tokens_predicted"]))

            results: dict[str, float] = {}
            for concurrency in (1, 2, 4):
                counts: list[int] = []
                started = time.perf_counter()
                for start in range(0, len(PROMPTS), concurrency):
                    threads = [
                        threading.Thread(target=one, args=(text, counts))
                        for text in PROMPTS[start : start + concurrency]
                    ]
                    for thread in threads:
                        thread.start()
                    for thread in threads:
                        thread.join()
                seconds = time.perf_counter() - started
                results[str(concurrency)] = sum(counts) / seconds
            return results
    finally:
        server.terminate()
        server.wait(10)


def best_of(runs: list[RunResult]) -> RunResult:
    return max(runs, key=lambda run: run.tokens_per_second)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", default=None, help="GGUF path (default: SmolLM2-135M)")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=default_thread_count())
    parser.add_argument("--context-size", type=int, default=2048)
    parser.add_argument("--n-batch", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3, help="runs per setup; the best counts")
    parser.add_argument("--llama-server", default=None, help="path of a llama-server binary")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    model = args.model or str(default_model_path())

    settings = EngineSettings(
        model_path=model,
        slots=SLOTS,
        context_size=args.context_size,
        n_batch=args.n_batch,
        n_threads=args.threads,
    )
    from llama_cpp import Llama

    engine = Engine.load(settings)
    llama = Llama(
        model_path=model,
        n_ctx=args.context_size,
        n_batch=args.n_batch,
        n_ubatch=args.n_batch,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        type_k=KV_CACHE_DTYPES[settings.k_cache_dtype],
        type_v=KV_CACHE_DTYPES[settings.v_cache_dtype],
        flash_attn=True,  # the engine's "auto" turns it on (a quantized V cache needs it)
        verbose=False,
    )
    try:
        run_engine(engine, SLOTS, 16)  # warm-ups
        run_llama_sequential(llama, 16)
        # Setups take turns within each repeat, so a noisy moment on the machine hits all alike.
        baseline_runs: list[RunResult] = []
        engine_tries: dict[int, list[RunResult]] = {1: [], 2: [], 4: []}
        for _ in range(args.repeats):
            baseline_runs.append(run_llama_sequential(llama, args.tokens))
            for concurrency, tries in engine_tries.items():
                tries.append(run_engine(engine, concurrency, args.tokens))
        baseline = best_of(baseline_runs)
        engine_runs = {concurrency: best_of(tries) for concurrency, tries in engine_tries.items()}
    finally:
        engine.close()
        llama.close()

    server: dict[str, float] | None = None
    if args.llama_server:
        binary = shutil.which(args.llama_server) or args.llama_server
        server = run_llama_server(binary, model, args, args.tokens)

    base_rate = baseline.tokens_per_second
    same_text = sum(
        a == b for a, b in zip(engine_runs[1].texts, baseline.texts, strict=True)
    ) / len(PROMPTS)
    print(f"model {Path(model).name}, {args.threads} threads, {args.tokens} tokens/request")
    print(f"{'setup':<34}{'tokens':>8}{'seconds':>10}{'tok/s':>10}{'x base':>9}")
    rows = [("llama-cpp-python Llama, sequential", baseline)] + [
        (f"engine, {c} concurrent", engine_runs[c]) for c in (1, 2, 4)
    ]
    for name, run in rows:
        print(
            f"{name:<34}{sum(run.generated):>8}{run.seconds:>10.2f}"
            f"{run.tokens_per_second:>10.1f}{run.tokens_per_second / base_rate:>9.2f}"
        )
    if server:
        for label, rate in server.items():
            print(f"{'llama-server, ' + label + ' concurrent':<34}{'':>18}{rate:>10.1f}")
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
        "llama_server": server,
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
