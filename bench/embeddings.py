"""Embedding throughput of the agent engine against llama-cpp-python's ``Llama.embed``.

The same 256 short documents are embedded with mean pooling:

* by one :class:`Engine` with 4 slots, as one embedding job (what one GenerateEmbeddingBatch
  request becomes on an agent), raw vectors out;
* by the high-level ``Llama(embedding=True)``, one ``embed`` call over the whole list, with
  the same model, context size, batch size, threads and KV cache types.

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

from bench.common import machine
from paddler_tui.models import default_model_path
from paddler_tui.server.agent.engine import Engine
from paddler_tui.server.agent.engine_model import KV_CACHE_DTYPES, default_thread_count
from paddler_tui.server.agent.engine_types import (
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


def run_llama(llama: object, texts: list[str]) -> tuple[float, list[list[float]]]:
    started = time.perf_counter()
    vectors = llama.embed(texts)  # type: ignore[attr-defined]
    return time.perf_counter() - started, vectors


def compare(engine: Engine, llama: object, texts: list[str], repeats: int) -> dict[str, Any]:
    """Best of ``repeats`` runs of each setup; the setups take turns, so a noisy moment on the
    machine hits both alike."""
    engine_seconds: list[float] = []
    llama_seconds: list[float] = []
    for _ in range(repeats):
        seconds, engine_vectors = run_engine(engine, texts)
        engine_seconds.append(seconds)
        seconds, llama_vectors = run_llama(llama, texts)
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

    settings = EngineSettings(
        model_path=model,
        slots=SLOTS,
        context_size=args.context_size,
        n_batch=args.n_batch,
        n_threads=args.threads,
        enable_embeddings=True,
        pooling_type="Mean",
    )
    import llama_cpp

    engine = Engine.load(settings)
    llama = llama_cpp.Llama(
        model_path=model,
        embedding=True,
        pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
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
        run_engine(engine, texts[:8])  # warm-ups
        run_llama(llama, texts[:8])
        sets = {
            "templated": compare(engine, llama, texts, args.repeats),
            "no_common_start": compare(engine, llama, reversed_words(texts), args.repeats),
        }
    finally:
        engine.close()
        llama.close()

    print(f"model {Path(model).name}, {args.threads} threads, {len(texts)} documents")
    print(f"{'documents':<18}{'setup':<30}{'seconds':>9}{'docs/s':>9}{'ratio':>8}")
    for name, result in sets.items():
        for setup, label in (
            ("llama_embed", "llama-cpp-python Llama.embed"),
            ("engine", f"engine, {SLOTS} slots, one job"),
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
