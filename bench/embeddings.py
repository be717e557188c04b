"""Embedding throughput of the agent's engine, in this process, against llama-cpp-python's
``Llama.embed`` in a process of its own.

The same 256 short documents are embedded with mean pooling:

* by one :class:`Engine` with 4 slots, as one embedding job (what one GenerateEmbeddingBatch
  request becomes on an agent), raw vectors out. The engine is measured directly in this
  process (no agent, balancer or network);
* by the high-level ``Llama(embedding=True)`` in a child process (:mod:`bench.llama_baseline`),
  one ``embed`` call over the whole list, with the same model, context size, batch size,
  threads and KV cache types.

The two take turns within each of ``--repeats`` rounds and the best round of each counts.
Extra buffer types (weight repacking) are off on both sides only where the agent's probe says
they crash on this host (:mod:`bench.engine_bench`).

Documents per second = 256 / wall time. Both sides must produce the same vectors (cosine
similarity ~1), which the run checks.

Two sets of documents are timed. The target is on the first: sentences from one template
("The cat quietly watched the empty street on day 17."), like real batches that share an
instruction prefix or boilerplate, where the engine decodes each shared prefix once. The second
set is the same words in reverse order, so documents hardly share a start: it shows what packing
alone gives (in this llama.cpp build embeddings mode still computes the vocabulary logits for
every token, which costs about 12% and cannot be turned off through its API).

Run: ``python -m bench.embeddings`` (writes ``bench/results/embeddings.json``).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import replace
from typing import Any

from bench.common import take_turns
from bench.engine_bench import BenchModel, loaded, options
from bench.llama_baseline import Child, child
from paddler_tui.server.agent.engine.engine import Engine
from paddler_tui.server.agent.engine.types import (
    DocumentEmbedded,
    EmbeddingJob,
    EngineEvent,
    JobFailed,
)

SLOTS = 4
SUBJECTS = ("The cat", "A rocket", "My neighbour", "The river", "An old clock", "The market")
VERBS = ("quietly watched", "slowly crossed", "loudly praised", "carefully fixed")
OBJECTS = ("the empty street", "a broken bridge", "the winter garden", "an ancient map")

Vectors = list[list[float]]


def documents(count: int) -> list[str]:
    return [
        f"{SUBJECTS[n % 6]} {VERBS[n // 6 % 4]} {OBJECTS[n // 24 % 4]} on day {n}."
        for n in range(count)
    ]


def reversed_words(texts: list[str]) -> list[str]:
    return [" ".join(reversed(text.split())) for text in texts]


def run_engine(engine: Engine, texts: list[str]) -> tuple[float, Vectors]:
    vectors: dict[str, list[float]] = {}
    failures: list[EngineEvent] = []
    done = threading.Event()

    def sink(event: EngineEvent) -> None:  # the engine thread: record, never raise
        if isinstance(event, DocumentEmbedded):
            vectors[event.document_id] = event.vector
            return
        if isinstance(event, JobFailed):
            failures.append(event)
        done.set()

    job = EmbeddingJob(job_id="bench", documents=[(str(n), t) for n, t in enumerate(texts)])
    started = time.perf_counter()
    engine.submit(job, sink)
    done.wait()
    seconds = time.perf_counter() - started
    if failures or len(vectors) != len(texts):
        raise RuntimeError(f"bench job failed: {failures or len(vectors)}")
    return seconds, [vectors[str(n)] for n in range(len(texts))]


def run_llama(llama: Child, texts: list[str], *, vectors: bool) -> tuple[float, Vectors]:
    """The child's own timing of one ``embed`` call; the vectors only when asked for."""
    answer = llama.call({"texts": texts, "vectors": vectors})
    return float(answer["seconds"]), answer["vectors"] or []


def compare(engine: Engine, llama: Child, texts: list[str], repeats: int) -> dict[str, Any]:
    """Best of ``repeats`` rounds of each setup, the setups taking turns."""
    # The vectors once (the first round): megabytes of JSON through a pipe, which the child's
    # own timing leaves out.
    rounds = iter(range(repeats))

    def llama_run() -> tuple[float, Vectors]:
        return run_llama(llama, texts, vectors=next(rounds) == 0)

    runs = take_turns(repeats, {"engine": lambda: run_engine(engine, texts), "llama": llama_run})
    engine_seconds = min(seconds for seconds, _ in runs["engine"])
    llama_seconds = min(seconds for seconds, _ in runs["llama"])
    engine_rate = len(texts) / engine_seconds
    llama_rate = len(texts) / llama_seconds
    (_, engine_vectors), (_, llama_vectors) = runs["engine"][-1], runs["llama"][0]
    agreement = min(cosine(a, b) for a, b in zip(engine_vectors, llama_vectors, strict=True))
    return {
        "llama_embed": {"seconds": round(llama_seconds, 4), "docs_per_second": llama_rate},
        "engine": {"seconds": round(engine_seconds, 4), "docs_per_second": engine_rate},
        "ratio_engine_vs_llama_embed": round(engine_rate / llama_rate, 3),
        "lowest_cosine_similarity": round(agreement, 6),
    }


def cosine(left: list[float], right: list[float]) -> float:
    dot = math.fsum(a * b for a, b in zip(left, right, strict=True))
    return dot / (math.hypot(*left) * math.hypot(*right))


def main(argv: list[str] | None = None) -> int:
    parser = options(
        __doc__.splitlines()[0] if __doc__ else None, "embeddings", context_size=8192, repeats=5
    )
    parser.add_argument("--documents", type=int, default=256)
    args = parser.parse_args(argv)
    model = BenchModel.from_args(args)
    texts = documents(args.documents)

    settings = replace(
        model.engine_settings(slots=SLOTS), enable_embeddings=True, pooling_type="Mean"
    )
    setup = model.llama_setup(kv_cache_dtype=settings.k_cache_dtype, warm_up=texts[:8])
    with (
        loaded(settings) as engine,
        child("bench.llama_baseline:llama_embedder", setup) as llama,
    ):
        run_engine(engine, texts[:8])  # warm-up (the child warmed up as it started)
        sets = {
            "templated": compare(engine, llama, texts, args.repeats),
            "no_common_start": compare(engine, llama, reversed_words(texts), args.repeats),
        }

    model.print_header(f"{len(texts)} documents")
    print(f"{'documents':<18}{'setup':<30}{'seconds':>9}{'docs/s':>9}{'ratio':>8}")
    for name, result in sets.items():
        for setup_name, label in (
            ("llama_embed", "Llama.embed, own process"),
            ("engine", f"engine in-process, {SLOTS} slots"),
        ):
            timing = result[setup_name]
            ratio = (
                f"{result['ratio_engine_vs_llama_embed']:.2f}x" if setup_name == "engine" else ""
            )
            print(
                f"{name:<18}{label:<30}{timing['seconds']:>9.3f}{timing['docs_per_second']:>9.1f}{ratio:>8}"
            )
    ratio = sets["templated"]["ratio_engine_vs_llama_embed"]
    print(f"engine vs Llama.embed on templated documents: {ratio:.2f}x (target >= 1.3x)")
    agreement = min(result["lowest_cosine_similarity"] for result in sets.values())
    print(f"lowest cosine similarity between the two: {agreement:.6f}")
    model.write_report(
        args.output,
        slots=SLOTS,
        documents=len(texts),
        repeats=args.repeats,
        sets=sets,
        ratio_engine_vs_llama_embed=ratio,
        target_met=ratio >= 1.3,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
