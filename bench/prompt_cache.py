"""Time to first token across a growing greedy chat, with and without prompt cache reuse.

Each of the 10 turns sends the whole conversation so far plus a new user message (a paragraph,
so that the conversation grows by a few hundred tokens a turn), generates a short greedy
answer, and appends it. Two engines with identical settings run the same chat side by side,
one reusing the KV cache of the previous turn, one decoding every prompt from scratch. Their
answers must be identical, turn for turn.

The chat runs once per KV cache type: Q8_0, Paddler's default, and F16. With reuse, turn 10
decodes about as many new tokens as turn 1, but each attends to ten times as many cached ones,
and llama.cpp's CPU flash attention converts every cached position of a quantized V cache to
floats again for every new token, so with Q8_0 that attention, not the decode of the new turn,
grows to most of turn 10's time.

Run: ``python bench/prompt_cache.py`` (writes ``bench/results/prompt_cache.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine, print_machine
from paddler_tui.models import default_model_path
from paddler_tui.server.agent.engine.engine import Engine
from paddler_tui.server.agent.engine.model import default_thread_count
from paddler_tui.server.agent.engine.types import (
    EngineEvent,
    EngineSettings,
    GenerationJob,
    JobFinished,
    SamplingSettings,
    TokenSampled,
)

RESULTS = Path(__file__).resolve().parent / "results" / "prompt_cache.json"
TURNS = 10
SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
TOPICS = (
    "lighthouses",
    "volcanoes",
    "honeybees",
    "glaciers",
    "the printing press",
    "coral reefs",
    "steam engines",
    "the moon",
    "rainforests",
    "chess",
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


def user_message(turn: int) -> str:
    topic = TOPICS[turn % len(TOPICS)]
    return (
        f"Here are my notes about {topic}. I have been reading about {topic} for a while and "
        f"I find {topic} fascinating: their history, how they work, why they matter to people, "
        f"and what scientists still argue about. My friends think {topic} are boring, but I "
        f"disagree, and I would like to explain why in a short talk next week. Please give me "
        f"one surprising fact about {topic} that I could open the talk with."
    )


def render(messages: list[tuple[str, str]], session: str) -> str:
    # The session name opens the prompt, so no chat reuses the cache of an earlier one.
    turns = [("system", f"Session {session}. {SYSTEM}"), *messages]
    text = "".join(f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in turns)
    return text + "<|im_start|>assistant\n"


@dataclass
class Turn:
    prompt_tokens: int
    cached_prompt_tokens: int
    first_token_seconds: float
    answer: str


def run_turn(engine: Engine, prompt: str, max_tokens: int, job_id: str) -> Turn:
    tokens = engine.tokenize(prompt, add_bos=True, parse_special=True)
    first_token = threading.Event()
    done = threading.Event()
    pieces: list[str] = []
    ends: list[EngineEvent] = []

    def sink(event: EngineEvent) -> None:
        if isinstance(event, TokenSampled):
            pieces.append(event.piece)
            first_token.set()
        else:
            ends.append(event)
            first_token.set()
            done.set()

    job = GenerationJob(job_id=job_id, prompt_tokens=tokens, max_tokens=max_tokens, sampling=GREEDY)
    started = time.perf_counter()
    engine.submit(job, sink)
    first_token.wait()
    first_token_seconds = time.perf_counter() - started
    done.wait()
    end = ends[0]
    if not isinstance(end, JobFinished):
        raise SystemExit(f"bench job failed: {end}")
    return Turn(len(tokens), end.cached_prompt_tokens, first_token_seconds, "".join(pieces))


def run_chat(engine: Engine, max_tokens: int, session: str) -> list[Turn]:
    messages: list[tuple[str, str]] = []
    turns: list[Turn] = []
    for index in range(TURNS):
        messages.append(("user", user_message(index)))
        turn = run_turn(engine, render(messages, session), max_tokens, f"{session}-{index}")
        messages.append(("assistant", turn.answer))
        turns.append(turn)
    return turns


def compare(args: argparse.Namespace, model: str, cache_dtype: str) -> dict[str, Any]:
    """Both setups with one KV cache type, taking turns; the best time per turn counts."""

    def settings(reuse: bool) -> EngineSettings:
        return EngineSettings(
            model_path=model,
            slots=1,
            context_size=args.context_size,
            n_threads=args.threads,
            k_cache_dtype=cache_dtype,
            v_cache_dtype=cache_dtype,
            reuse_prompt_cache=reuse,
        )

    engines = {"reuse": Engine.load(settings(True)), "no_reuse": Engine.load(settings(False))}
    runs: dict[str, list[list[Turn]]] = {name: [] for name in engines}
    try:
        for name, engine in engines.items():
            run_turn(engine, render([("user", "Hi")], "warm-up"), 4, f"warm-up-{name}")
        # The setups take turns, so a noisy moment on the machine hits both alike.
        for repeat in range(args.repeats):
            for name, engine in engines.items():
                runs[name].append(run_chat(engine, args.tokens, str(repeat)))
    finally:
        for engine in engines.values():
            engine.close()

    def best(name: str, index: int) -> float:
        return min(chat[index].first_token_seconds for chat in runs[name])

    reuse, no_reuse = runs["reuse"][0], runs["no_reuse"][0]
    identical = all(a.answer == b.answer for a, b in zip(reuse, no_reuse, strict=True))
    print(f"KV cache {cache_dtype}")
    print(f"{'turn':>4}{'prompt':>8}{'cached':>8}{'ttft reuse':>12}{'ttft none':>11}{'speedup':>9}")
    rows = []
    for index in range(TURNS):
        with_reuse, without = best("reuse", index), best("no_reuse", index)
        rows.append(
            {
                "turn": index + 1,
                "prompt_tokens": reuse[index].prompt_tokens,
                "cached_prompt_tokens": reuse[index].cached_prompt_tokens,
                "ttft_reuse_seconds": round(with_reuse, 4),
                "ttft_no_reuse_seconds": round(without, 4),
            }
        )
        print(
            f"{index + 1:>4}{reuse[index].prompt_tokens:>8}{reuse[index].cached_prompt_tokens:>8}"
            f"{with_reuse * 1000:>10.1f}ms{without * 1000:>9.1f}ms{without / with_reuse:>8.2f}x"
        )
    growth = best("reuse", TURNS - 1) / best("reuse", 0)
    print(f"turn {TURNS} vs turn 1 time to first token, with reuse: {growth:.2f}x (target <= 1.5x)")
    print(f"answers identical with and without reuse: {identical}\n")
    return {
        "turns": rows,
        "turn_10_vs_turn_1_with_reuse": round(growth, 3),
        "target_met": growth <= 1.5,
        "answers_identical": identical,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", default=None, help="GGUF path (default: SmolLM2-135M)")
    parser.add_argument("--tokens", type=int, default=32, help="answer length per turn")
    parser.add_argument("--threads", type=int, default=default_thread_count())
    parser.add_argument("--context-size", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3, help="chats per setup; best per turn")
    parser.add_argument(
        "--cache-dtypes", default="Q8_0,F16", help="KV cache types to run, comma-separated"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    model = args.model or str(default_model_path())
    print_machine()
    print(f"model {Path(model).name}, {args.threads} threads, {args.tokens} tokens per answer")
    results = {dtype: compare(args, model, dtype) for dtype in args.cache_dtypes.split(",")}
    report = {
        "machine": machine(),
        "model": Path(model).name,
        "threads": args.threads,
        "context_size": args.context_size,
        "tokens_per_answer": args.tokens,
        "repeats": args.repeats,
        "by_kv_cache_dtype": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
