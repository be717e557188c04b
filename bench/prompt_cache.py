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

Then two such chats take turns on one slot, so that each turn finds the slot holding the other
chat: with the prompt cache in host memory (``--prompt-cache-ram``) each turn restores its chat's
saved state, with only the slot (``--prompt-cache-ram 0``) it decodes its whole prompt. Their
answers must be identical too. Last, the cost of one sequence's state: its bytes per token, and
the time to save and to restore 1024 tokens of it, next to the time to decode them.

Run: ``python -m bench.prompt_cache`` (writes ``bench/results/prompt_cache.json``).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, TypeAlias

from bench.common import take_turns
from bench.engine_bench import GREEDY, BenchModel, Generation, chat_prompt, loaded, options
from paddler_tui.server.agent.engine.batch import DECODE_OK, DecodeBatch
from paddler_tui.server.agent.engine.engine import Engine
from paddler_tui.server.agent.engine.model import ModelContext
from paddler_tui.server.agent.engine.thread import ComputeThread
from paddler_tui.server.agent.engine.types import EngineSettings, GenerationJob

TURNS = 10
STATE_TOKENS = 1024  # the sequence whose state is saved and restored
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
    return chat_prompt([("system", f"Session {session}. {SYSTEM}"), *messages])


@dataclass
class Turn:
    prompt_tokens: int
    cached_prompt_tokens: int
    first_token_seconds: float
    answer: str


def run_turn(engine: Engine, prompt: str, max_tokens: int, job_id: str) -> Turn:
    tokens = engine.tokenize(prompt, add_bos=True, parse_special=True)
    done = threading.Event()
    sink = Generation(done.set)
    job = GenerationJob(job_id=job_id, prompt_tokens=tokens, max_tokens=max_tokens, sampling=GREEDY)
    started = time.perf_counter()
    engine.submit(job, sink)
    done.wait()
    end = sink.finished()
    # An answer without a token: its first output is its end.
    first_output_at = sink.first_token_at or sink.ended_at
    assert first_output_at is not None
    return Turn(len(tokens), end.cached_prompt_tokens, first_output_at - started, sink.text)


def run_chat(engine: Engine, max_tokens: int, sessions: Iterator[int]) -> list[Turn]:
    # The session name opens the prompt, so no chat reuses the cache of an earlier one; the
    # engines count their chats alike, so both get the same prompts.
    session = str(next(sessions))
    messages: list[tuple[str, str]] = []
    turns: list[Turn] = []
    for index in range(TURNS):
        messages.append(("user", user_message(index)))
        turn = run_turn(engine, render(messages, session), max_tokens, f"{session}-{index}")
        messages.append(("assistant", turn.answer))
        turns.append(turn)
    return turns


Chat: TypeAlias = Callable[[Engine, int, Iterator[int]], list[Turn]]


def one_slot(model: BenchModel, cache_dtype: str) -> EngineSettings:
    return replace(
        model.engine_settings(slots=1), k_cache_dtype=cache_dtype, v_cache_dtype=cache_dtype
    )


@dataclass
class Runs:
    """Every round's turns, by setup."""

    by_setup: dict[str, list[list[Turn]]]

    def first(self, name: str) -> list[Turn]:
        return self.by_setup[name][0]

    def best(self, name: str, index: int) -> float:
        """The best time to first token of turn ``index`` over the rounds."""
        return min(turns[index].first_token_seconds for turns in self.by_setup[name])

    def identical(self, one: str, other: str) -> bool:
        pairs = zip(self.first(one), self.first(other), strict=True)
        return all(a.answer == b.answer for a, b in pairs)


def side_by_side(setups: dict[str, EngineSettings], chat: Chat, args: argparse.Namespace) -> Runs:
    """Each setup's engine runs ``chat`` once a round, in turn."""
    with contextlib.ExitStack() as stack:
        engines = {name: stack.enter_context(loaded(settings)) for name, settings in setups.items()}
        for name, engine in engines.items():
            run_turn(engine, render([("user", "Hi")], "warm-up"), 4, f"warm-up-{name}")
        return Runs(
            take_turns(
                args.repeats,
                {
                    name: partial(chat, engine, args.tokens, itertools.count())
                    for name, engine in engines.items()
                },
            )
        )


def compare(model: BenchModel, args: argparse.Namespace, cache_dtype: str) -> dict[str, Any]:
    """Both setups with one KV cache type, taking turns; the best time per turn counts."""
    settings = one_slot(model, cache_dtype)
    setups = {
        "reuse": replace(settings, reuse_prompt_cache=True),
        "no_reuse": replace(settings, reuse_prompt_cache=False),
    }
    runs = side_by_side(setups, run_chat, args)
    best = runs.best
    reuse = runs.first("reuse")
    identical = runs.identical("reuse", "no_reuse")
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


def run_interleaved(engine: Engine, max_tokens: int, sessions: Iterator[int]) -> list[Turn]:
    """Two chats taking turns on the engine's one slot; the turns in the order they ran."""
    histories: dict[str, list[tuple[str, str]]] = {str(next(sessions)): [] for _ in range(2)}
    turns: list[Turn] = []
    for index in range(TURNS):
        for session, messages in histories.items():
            messages.append(("user", user_message(index)))
            turn = run_turn(engine, render(messages, session), max_tokens, f"{session}-{index}")
            messages.append(("assistant", turn.answer))
            turns.append(turn)
    return turns


def interleave(model: BenchModel, args: argparse.Namespace, cache_dtype: str) -> dict[str, Any]:
    """Two chats on one slot, with the prompt cache in host memory and with the slot alone."""
    settings = one_slot(model, cache_dtype)
    setups = {"ram_cache": settings, "slot_only": replace(settings, prompt_cache_ram=0)}
    runs = side_by_side(setups, run_interleaved, args)
    best = runs.best
    ram, slot = runs.first("ram_cache"), runs.first("slot_only")
    identical = runs.identical("ram_cache", "slot_only")
    print(f"KV cache {cache_dtype}, two chats taking turns on one slot")
    print(
        f"{'turn':>4}{'chat':>5}{'prompt':>8}{'cached ram':>11}{'cached slot':>12}"
        f"{'ttft ram':>10}{'ttft slot':>11}{'speedup':>9}"
    )
    rows = []
    for index, (with_ram, with_slot) in enumerate(zip(ram, slot, strict=True)):
        ttft_ram, ttft_slot = best("ram_cache", index), best("slot_only", index)
        turn, chat = divmod(index, 2)
        rows.append(
            {
                "turn": turn + 1,
                "chat": chat + 1,
                "prompt_tokens": with_ram.prompt_tokens,
                "cached_prompt_tokens_ram_cache": with_ram.cached_prompt_tokens,
                "cached_prompt_tokens_slot_only": with_slot.cached_prompt_tokens,
                "ttft_ram_cache_seconds": round(ttft_ram, 4),
                "ttft_slot_only_seconds": round(ttft_slot, 4),
            }
        )
        print(
            f"{turn + 1:>4}{chat + 1:>5}{with_ram.prompt_tokens:>8}"
            f"{with_ram.cached_prompt_tokens:>11}{with_slot.cached_prompt_tokens:>12}"
            f"{ttft_ram * 1000:>8.1f}ms{ttft_slot * 1000:>9.1f}ms{ttft_slot / ttft_ram:>8.2f}x"
        )
    later = slice(2, None)  # turns 2 and on, of both chats

    def share(turns: list[Turn]) -> float:
        return sum(t.cached_prompt_tokens for t in turns[later]) / sum(
            t.prompt_tokens for t in turns[later]
        )

    print(
        f"turns 2+: {share(ram):.0%} of prompt tokens from a cache with the RAM cache, "
        f"{share(slot):.0%} with the slot alone"
    )
    print(f"answers identical with the RAM cache and with the slot alone: {identical}\n")
    return {
        "turns": rows,
        "cached_share_turns_2_plus_ram_cache": round(share(ram), 3),
        "cached_share_turns_2_plus_slot_only": round(share(slot), 3),
        "answers_identical": identical,
    }


def state_copy(model: BenchModel, args: argparse.Namespace, cache_dtype: str) -> dict[str, Any]:
    """Bytes per token of a sequence's state, and the best time to save, restore and decode
    :data:`STATE_TOKENS` tokens, on a compute thread as the engine does."""
    settings = replace(
        model.engine_settings(slots=2), k_cache_dtype=cache_dtype, v_cache_dtype=cache_dtype
    )
    compute = ComputeThread()
    try:
        result = compute.call(partial(_time_state_copy, settings, args.repeats)).result()
    finally:
        compute.stop()
    print(
        f"KV cache {cache_dtype}: {result['bytes_per_token']:.0f} bytes per token; "
        f"{STATE_TOKENS} tokens: save {result['save_ms']:.1f} ms, restore "
        f"{result['restore_ms']:.1f} ms, decode {result['decode_ms']:.1f} ms"
    )
    return result


def _time_state_copy(settings: EngineSettings, repeats: int) -> dict[str, Any]:
    context = ModelContext.load(settings)
    batch = DecodeBatch(context.n_batch)
    try:
        context.warm_up()
        text = " ".join(user_message(index) for index in range(4 * TURNS))
        tokens = context.tokenize(text, add_bos=True, parse_special=False)[:STATE_TOKENS]
        saves, restores, decodes = [], [], []
        size = 0
        for _ in range(max(1, repeats)):
            context.clear_memory()
            started = time.perf_counter()
            for start in range(0, len(tokens), context.n_batch):
                batch.clear()
                chunk = tokens[start : start + context.n_batch]
                batch.add_run(chunk, start, 0, last_logits=True)
                if batch.decode(context.ctx) != DECODE_OK:
                    raise RuntimeError("decode failed")
            decodes.append(time.perf_counter() - started)
            started = time.perf_counter()
            data = context.save_sequence(0)
            saves.append(time.perf_counter() - started)
            if data is None:
                raise RuntimeError("llama.cpp could not save the sequence")
            size = len(data)
            started = time.perf_counter()
            if not context.restore_sequence(1, data):
                raise RuntimeError("llama.cpp could not restore the sequence")
            restores.append(time.perf_counter() - started)
        return {
            "tokens": len(tokens),
            "state_bytes": size,
            "bytes_per_token": round(size / len(tokens), 1),
            "save_ms": round(min(saves) * 1000, 2),
            "restore_ms": round(min(restores) * 1000, 2),
            "decode_ms": round(min(decodes) * 1000, 2),
        }
    finally:
        batch.free()
        context.free()


def main(argv: list[str] | None = None) -> int:
    parser = options(
        __doc__.splitlines()[0] if __doc__ else None, "prompt_cache", context_size=8192, repeats=3
    )
    parser.add_argument("--tokens", type=int, default=32, help="answer length per turn")
    parser.add_argument(
        "--cache-dtypes", default="Q8_0,F16", help="KV cache types to run, comma-separated"
    )
    args = parser.parse_args(argv)
    model = BenchModel.from_args(args)
    model.print_header(f"{args.tokens} tokens per answer")
    dtypes = args.cache_dtypes.split(",")
    results = {dtype: compare(model, args, dtype) for dtype in dtypes}
    interleaved = {dtype: interleave(model, args, dtype) for dtype in dtypes}
    copies = {dtype: state_copy(model, args, dtype) for dtype in dtypes}
    model.write_report(
        args.output,
        tokens_per_answer=args.tokens,
        repeats=args.repeats,
        by_kv_cache_dtype=results,
        two_chats_on_one_slot_by_kv_cache_dtype=interleaved,
        sequence_state_by_kv_cache_dtype=copies,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
