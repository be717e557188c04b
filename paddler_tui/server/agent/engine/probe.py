"""The extra-buffers probe: ``python -m paddler_tui.server.agent.engine.probe MODEL``.

Run as a child process by :mod:`extra_buffers`. It loads the model with llama.cpp's extra
buffer types (weight repacking) and decodes multi-token batches, the step that crashes on hosts
whose repacked kernels are broken. Exit status 0: it worked; ``INCONCLUSIVE``: the model could
not be loaded at all, which says nothing about extra buffers. A crash ends it by a signal, and
faulthandler leaves the native traceback on stderr for the agent's log.
"""

from __future__ import annotations

import faulthandler
import sys

from paddler_tui.server.agent.engine.batch import DECODE_OK, DecodeBatch
from paddler_tui.server.agent.engine.model import ModelContext
from paddler_tui.server.agent.engine.types import EngineLoadError, EngineSettings

INCONCLUSIVE = 3
PROBE_TEXT = "The quick brown fox jumps over the lazy dog, then naps in the warm afternoon sun."
GENERATED = 4  # single-token decodes after the prompt, the other kernel shape


def probe(model_path: str, *, threads: int | None) -> None:
    """Load with extra buffers and decode; raises EngineLoadError if the model will not load,
    RuntimeError if a decode fails."""
    settings = EngineSettings(
        model_path=model_path,
        slots=1,
        context_size=256,
        n_batch=64,
        n_threads=threads,
        use_extra_buffers=True,
    )
    model = ModelContext.load(settings)
    batch = DecodeBatch(model.n_batch)
    try:
        model.warm_up()
        tokens = model.tokenize(PROBE_TEXT, add_bos=True, parse_special=False)[: model.n_batch]
        batch.add_run(tokens, 0, 0, last_logits=True)
        _decode(batch, model)
        for position in range(len(tokens), len(tokens) + GENERATED):
            batch.clear()
            batch.add(tokens[-1], position, 0, logits=True)
            _decode(batch, model)
    finally:
        batch.free()
        model.free()


def _decode(batch: DecodeBatch, model: ModelContext) -> None:
    status = batch.decode(model.ctx)
    if status != DECODE_OK:
        # Not a load failure: an abnormal exit, so the agent loads without extra buffers.
        raise RuntimeError(f"llama_decode failed with extra buffers ({status})")


def main(argv: list[str]) -> int:
    faulthandler.enable()
    model_path = argv[0]
    threads = int(argv[1]) if len(argv) > 1 else None
    try:
        probe(model_path, threads=threads)
    except EngineLoadError as error:
        print(f"inconclusive: {error}", file=sys.stderr)
        return INCONCLUSIVE
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
