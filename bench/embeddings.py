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
they crash on this host.

Documents per second = 256 / wall time. Both sides must produce the same vectors (cosine
similarity ~1), which the run checks.

Two sets of documents are timed. The target is on the first: sentences from one template
("The cat quietly watched the empty street on day 17."), like real batches that share an
instruction prefix or boilerplate, where the engine decodes each shared prefix once. The second
set is the same words in reverse order, so documents hardly share a start: it shows what packing
alone gives (in this llama.cpp build embeddings mode still computes the vocabulary logits for
every token, which costs about 12% and cannot be turned off through its API).

Run: ``python bench/embeddings.py`` (writes ``bench/results/embeddings.json``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import extra_buffers_verdict, machine, print_machine
from bench.llama_baseline import Child, child
from paddler_tui.models import default_model_path
from paddler_tui.server.agent.engine.engine import Engine
from paddler_tui.server.agent.engine.model import default_thread_count
from paddler_tui.server.agent.engine.types import (
    DocumentEmbedded,
    EmbeddingJob,
    EngineEvent,
    EngineSettings,
    JobFailed,
)

RESULTS = Path(__file__).resolve().parent / "results" / "embeddings.json"
SLOTS = 4
SUBJECTS = ("The cat", "A rocket", "My neighbour", "The river", "An old clock", "The market")
VERBS = ("quietly watched", "slowly crossed", "loudly praised", "carefully fixed")
OBJECTS = ("the empty street", "a broken bridge", "the winter garden", "an ancient map")


def documents(count: int) -> list[str]:
    return [
        f"{SUBJECTS[n % 6]} {VERBS[n // 6 % 4]} {OBJECTS[n // 24 % 4]} on day {n}."
        for n in range(count)
    ]


def reversed_words(texts: list[str]) -> list[str]:
    return [" ".join(reversed(text.split())) for text in texts]


def run_engine(engine: Engine, texts: list[str]) -> tuple[float, list[list[float]]]:
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
        raise SystemExit(f"bench job failed: {failures or len(vectors)}")
    return seconds, [vectors[str(n)] for n in range(len(texts))]


def run_llama(llama: Child, texts: list[str], *, vectors: bool) -> tuple[float, list[list[float]]]:
    """The child's own timing of one ``embed`` call; the vectors only when asked for."""
    answer = llama.call({"texts": texts, "vectors": vectors})
    return float(answer["seconds"]), answer["vectors"] or []


def compare(engine: Engine, llama: Child, texts: list[str], repeats: int) -> dict[str, Any]:
    """Best of ``repeats`` runs of each setup; the setups take turns, so a noisy moment on the
    machine hits both alike."""
    engine_seconds: list[float] = []
    llama_seconds: list[float] = []
    llama_vectors: list[list[float]] = []
    for repeat in range(repeats):
        seconds, engine_vectors = run_engine(engine, texts)
        engine_seconds.append(seconds)
        # The vectors once (the last round): megabytes of JSON through a pipe.
        seconds, vectors = run_llama(llama, texts, vectors=repeat == repeats - 1)
        llama_vectors = vectors or llama_vectors
        llama_seconds.append(seconds)
    engine_rate = len(texts) / min(engine_seconds)
    llama_rate = len(texts) / min(llama_seconds)
    agreement = min(cosine(a, b) for a, b in zip(engine_vectors, llama_vectors, strict=True))
    return {
        "llama_embed": {"seconds": round(min(llama_seconds), 4), "docs_per_second": llama_rate},
        "engine": {"seconds": round(min(engine_seconds), 4), "docs_per_second": engine_rate},
        "ratio_engine_vs_llama_embed": round(engine_rate / llama_rate, 3),
        "lowest_cosine_similarity": round(agreement, 6),
    }


def cosine(left: list[float], right: list[float]) -> float:
    dot = math.fsum(a * b for a, b in zip(left, right, strict=True))
    return dot / (math.hypot(*left) * math.hypot(*right))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", default=None, help="GGUF path (default: SmolLM2-135M)")
    parser.add_argument("--documents", type=int, default=256)
    parser.add_argument("--threads", type=int, default=default_thread_count())
    parser.add_argument("--context-size", type=int, default=8192)
    parser.add_argument("--n-batch", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5, help="runs per setup; the best counts")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    model = args.model or str(default_model_path())
    texts = documents(args.documents)

    repack, repack_reason = extra_buffers_verdict(model)

    settings = EngineSettings(
        model_path=model,
        slots=SLOTS,
        context_size=args.context_size,
        n_batch=args.n_batch,
        n_threads=args.threads,
        enable_embeddings=True,
        pooling_type="Mean",
        use_extra_buffers=repack,
    )
    llama_setup = {
        "model": model,
        "context_size": args.context_size,
        "n_batch": args.n_batch,
        "threads": args.threads,
        "kv_cache_dtype": settings.k_cache_dtype,
        "extra_buffers": repack,
        "warm_up": texts[:8],
    }
    engine = Engine.load(settings)
    try:
        with child("bench.llama_baseline:llama_embedder", llama_setup) as llama:
            run_engine(engine, texts[:8])  # warm-up (the child warmed up as it started)
            sets = {
                "templated": compare(engine, llama, texts, args.repeats),
                "no_common_start": compare(engine, llama, reversed_words(texts), args.repeats),
            }
    finally:
        engine.close()

    print_machine()
    print(f"model {Path(model).name}, {args.threads} threads, {len(texts)} documents")
    print(f"extra buffer types: {'on' if repack else 'off'} ({repack_reason})")
    print(f"{'documents':<18}{'setup':<30}{'seconds':>9}{'docs/s':>9}{'ratio':>8}")
    for name, result in sets.items():
        for setup, label in (
            ("llama_embed", "Llama.embed, own process"),
            ("engine", f"engine in-process, {SLOTS} slots"),
        ):
            timing = result[setup]
            ratio = f"{result['ratio_engine_vs_llama_embed']:.2f}x" if setup == "engine" else ""
            print(
                f"{name:<18}{label:<30}{timing['seconds']:>9.3f}{timing['docs_per_second']:>9.1f}{ratio:>8}"
            )
    ratio = sets["templated"]["ratio_engine_vs_llama_embed"]
    print(f"engine vs Llama.embed on templated documents: {ratio:.2f}x (target >= 1.3x)")
    agreement = min(result["lowest_cosine_similarity"] for result in sets.values())
    print(f"lowest cosine similarity between the two: {agreement:.6f}")
    report = {
        "machine": machine(),
        "model": Path(model).name,
        "threads": args.threads,
        "context_size": args.context_size,
        "n_batch": args.n_batch,
        "slots": SLOTS,
        "documents": len(texts),
        "repeats": args.repeats,
        "extra_buffers": {"enabled": repack, "reason": repack_reason},
        "sets": sets,
        "ratio_engine_vs_llama_embed": ratio,
        "target_met": ratio >= 1.3,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
