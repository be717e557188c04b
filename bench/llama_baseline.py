"""Baselines in a process of their own, never in the process being measured.

:func:`child` starts ``python -m bench.llama_baseline``, which builds a handler with
``factory(setup)`` (a ``"module:function"`` name; the factory loads its model and warms up) and
then answers each JSON request line on its stdin with one JSON line on its stdout. Handlers
time their own work, so process start-up and the pipe never count; while the parent measures
something else the child only waits on its stdin. Whatever else the child writes (llama.cpp's
logs) goes to a log file: its stdout is kept for the answers.

The llama-cpp-python ``Llama`` baselines several benches share are here:
:func:`llama_completer` (greedy completions, one after another: ``Llama`` runs one sequence at
a time) and :func:`llama_embedder` (``Llama.embed``).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent
STOP_GRACE_S = 10.0

Json = dict[str, Any]
Handler = Callable[[Json], Json]


class Child:
    """The parent's end: one request, one answer, in order."""

    def __init__(self, process: subprocess.Popen[str], log: Path) -> None:
        self.process = process
        self.log = log
        self.ready: Json = {}

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self) -> Json:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            tail = self.log.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"the baseline child exited ({self.process.returncode}):\n{tail}")
        answer: Json = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"the baseline child failed: {answer['error']}")
        return answer

    def call(self, request: Mapping[str, object]) -> Json:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self._read()

    def stop(self) -> None:
        """End of stdin first (it exits by itself), then SIGTERM and SIGKILL by pid."""
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        for signum in (None, signal.SIGTERM, signal.SIGKILL):
            if signum is not None and self.process.poll() is None:
                os.kill(self.pid, signum)
            try:
                self.process.wait(STOP_GRACE_S)
                return
            except subprocess.TimeoutExpired:
                continue


@contextlib.contextmanager
def child(factory: str, setup: Mapping[str, object], *, log: Path | None = None) -> Iterator[Child]:
    """A child running ``factory(setup)``'s handler, ready (loaded, warmed up) on entry."""
    with contextlib.ExitStack() as stack:
        if log is None:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-child-"))
            log = Path(directory) / "child.log"
        with log.open("w") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "bench.llama_baseline"],
                cwd=REPO,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        made = Child(process, log)
        try:
            made.ready = made.call({"factory": factory, "setup": setup})
            yield made
        finally:
            made.stop()


# Llama handlers (run in the child).


def _llama(setup: Json, **extra: Any) -> Any:
    import llama_cpp

    from paddler_tui.server.agent.engine.model import KV_CACHE_DTYPES

    if not setup.get("extra_buffers", True):
        # ``Llama`` has no switch for llama.cpp's extra buffer types (``--no-repack``); its
        # model parameters start from this function, so they start with them off.
        defaults = llama_cpp.llama_model_default_params

        def without_extra_buffers() -> Any:
            params = defaults()
            params.use_extra_bufts = False
            return params

        llama_cpp.llama_model_default_params = without_extra_buffers
    return llama_cpp.Llama(
        model_path=setup["model"],
        n_ctx=setup["context_size"],
        n_batch=setup["n_batch"],
        n_ubatch=setup["n_batch"],
        n_threads=setup["threads"],
        n_threads_batch=setup["threads"],
        type_k=KV_CACHE_DTYPES[setup["kv_cache_dtype"]],
        type_v=KV_CACHE_DTYPES[setup["kv_cache_dtype"]],
        flash_attn=True,  # the engine's and llama-server's "auto" turn it on on CPU
        verbose=False,
        **extra,
    )


def llama_completer(setup: Json) -> Handler:
    """Greedy completions of ``prompts``, one after another; per-prompt seconds and counts.

    Setup: model, context_size, n_batch, threads, kv_cache_dtype, extra_buffers, warm_up (a
    list of prompts run once with 16 tokens). Request: prompts, max_tokens.
    """
    llama = _llama(setup)

    def handle(request: Json) -> Json:
        seconds: list[float] = []
        generated: list[int] = []
        texts: list[str] = []
        for prompt in request["prompts"]:
            started = time.perf_counter()
            completion = llama.create_completion(
                prompt,
                max_tokens=request["max_tokens"],
                temperature=0.0,
                repeat_penalty=1.0,
                frequency_penalty=0.0,
                presence_penalty=0.0,
            )
            seconds.append(time.perf_counter() - started)
            generated.append(int(completion["usage"]["completion_tokens"]))
            texts.append(str(completion["choices"][0]["text"]))
        return {"seconds": seconds, "generated": generated, "texts": texts}

    handle({"prompts": setup.get("warm_up", []), "max_tokens": 16})
    return handle


def llama_embedder(setup: Json) -> Handler:
    """``Llama.embed`` of ``texts`` with mean pooling, raw vectors; the seconds it took.

    Setup: as :func:`llama_completer` (warm_up: a list of texts). Request: texts, and
    ``vectors: true`` to get the vectors back.
    """
    import llama_cpp

    llama = _llama(setup, embedding=True, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN)

    def handle(request: Json) -> Json:
        started = time.perf_counter()
        vectors = llama.embed(request["texts"])
        seconds = time.perf_counter() - started
        return {"seconds": seconds, "vectors": vectors if request.get("vectors") else None}

    if setup.get("warm_up"):
        handle({"texts": setup["warm_up"]})
    return handle


# The child's side.


def _serve(requests: IO[str], answers: IO[str]) -> None:
    first = requests.readline()
    if not first:
        return
    opening = json.loads(first)
    module, _, name = opening["factory"].partition(":")
    factory: Callable[[Json], Handler] = getattr(importlib.import_module(module), name)
    handler = factory(opening["setup"])
    answers.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    answers.flush()
    for line in requests:
        answers.write(json.dumps(handler(json.loads(line))) + "\n")
        answers.flush()


def main() -> int:
    # Only answers go to the real stdout; anything else printed (C code included) goes to
    # stderr, which the parent sends to a log file.
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        _serve(sys.stdin, answers)
    except Exception as error:
        import traceback

        traceback.print_exc()
        answers.write(json.dumps({"error": f"{type(error).__name__}: {error}"}) + "\n")
        answers.flush()
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
