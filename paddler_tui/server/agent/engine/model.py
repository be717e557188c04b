"""One GGUF model and its one shared llama context, through llama-cpp-python's ctypes API.

Everything here runs on the engine thread except loading (before the thread starts) and the
read-only vocabulary helpers (tokenize, token text), which llama.cpp allows from any thread.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import os
import threading
from typing import TYPE_CHECKING, Any, TypeAlias

import llama_cpp

from paddler_tui.server.agent.engine.types import EngineLoadError, EngineSettings

if TYPE_CHECKING:
    from collections.abc import Callable

llama_logger = logging.getLogger("paddler_tui.llama_cpp")

# An opaque ctypes pointer handed out by llama_cpp (model, vocab, context, memory).
Pointer: TypeAlias = Any

NO_TOKEN = -1  # LLAMA_TOKEN_NULL

KV_CACHE_DTYPES: dict[str, int] = {
    "F32": llama_cpp.GGML_TYPE_F32,
    "F16": llama_cpp.GGML_TYPE_F16,
    "BF16": 30,  # GGML_TYPE_BF16; llama_cpp exports no constant for it
    "Q8_0": llama_cpp.GGML_TYPE_Q8_0,
    "Q4_0": llama_cpp.GGML_TYPE_Q4_0,
    "Q4_1": llama_cpp.GGML_TYPE_Q4_1,
    "IQ4_NL": llama_cpp.GGML_TYPE_IQ4_NL,
    "Q5_0": llama_cpp.GGML_TYPE_Q5_0,
    "Q5_1": llama_cpp.GGML_TYPE_Q5_1,
}
POOLING_TYPES: dict[str, int] = {
    "Unspecified": llama_cpp.LLAMA_POOLING_TYPE_UNSPECIFIED,
    "None": llama_cpp.LLAMA_POOLING_TYPE_NONE,
    "Mean": llama_cpp.LLAMA_POOLING_TYPE_MEAN,
    "Cls": llama_cpp.LLAMA_POOLING_TYPE_CLS,
    "Last": llama_cpp.LLAMA_POOLING_TYPE_LAST,
    "Rank": llama_cpp.LLAMA_POOLING_TYPE_RANK,
}
WARM_UP_TOKENS_PER_SLOT = 4  # as Paddler does before declaring its slots started


def default_thread_count() -> int:
    """Paddler's rule: half the usable CPUs, at least 2, for generation and batch threads."""
    affinity = getattr(os, "sched_getaffinity", None)  # Linux; elsewhere count every CPU
    usable = len(affinity(0)) if affinity is not None else (os.cpu_count() or 2)
    return max(2, usable // 2)


# llama.cpp logs through one process-wide callback; route it into `logging` and remember recent
# errors so a failed load can say why. It must stay referenced for as long as llama.cpp may call it.
# ggml levels: 1 debug, 2 info (chatty while loading, so debug here), 3 warn, 4 error, 5 cont.
_GGML_LEVELS = {1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.ERROR}
_recent_errors: collections.deque[str] = collections.deque(maxlen=8)


class _LogLine:
    level = logging.DEBUG
    text = ""


def _on_llama_log(level: int, text: bytes | None, _user_data: object) -> None:
    if level != 5:  # GGML_LOG_LEVEL_CONT continues the previous line at its level
        _LogLine.level = _GGML_LEVELS.get(level, logging.DEBUG)
    py_level = _LogLine.level
    line = _LogLine.text + (text or b"").decode("utf-8", errors="replace")
    if not line.endswith("\n"):
        _LogLine.text = line
        return
    _LogLine.text = ""
    line = line.rstrip()
    if py_level >= logging.ERROR:
        _recent_errors.append(line)
    if llama_logger.isEnabledFor(py_level):
        llama_logger.log(py_level, "%s", line)


_LOG_CALLBACK = llama_cpp.llama_log_callback(_on_llama_log)
_backend_lock = threading.Lock()
_backend_ready = False


def _init_backend() -> None:
    global _backend_ready  # noqa: PLW0603 - llama.cpp's backend is process-wide state
    with _backend_lock:
        if not _backend_ready:
            llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))
            llama_cpp.llama_backend_init()
            _backend_ready = True


def _meta_string(getter: Callable[..., Any], model: Pointer, which: int | bytes) -> str | None:
    """Call a snprintf-style metadata getter (by index or key), growing the buffer until the
    value fits; None if there is no such entry."""
    size = 256
    while True:
        buffer = ctypes.create_string_buffer(size)
        needed = int(getter(model, which, buffer, size))
        if needed < 0:
            return None
        if needed < size:
            return buffer.value.decode("utf-8", errors="replace")
        size = needed + 1


def _llama_errors(default: str) -> str:
    """What llama.cpp logged as errors since the last clear (the reason is rarely the last)."""
    return "; ".join(_recent_errors) if _recent_errors else default


class ModelContext:
    """A loaded model, its vocabulary, and the single llama context all slots share."""

    def __init__(self, model: Pointer, context: Pointer, settings: EngineSettings) -> None:
        self.model: Pointer = model
        self.vocab: Pointer = llama_cpp.llama_model_get_vocab(model)
        self.ctx: Pointer = context
        self.memory: Pointer = llama_cpp.llama_get_memory(context)
        self.settings = settings
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self.vocab))
        # llama.cpp rounds sizes (a sequence's context is padded to 256, n_batch is capped by
        # n_ctx), so the scheduler works from what the context reports, not from the settings.
        self.n_ctx = int(llama_cpp.llama_n_ctx(context))
        self.n_ctx_seq = int(llama_cpp.llama_n_ctx_seq(context))
        self.n_batch = int(llama_cpp.llama_n_batch(context))
        self.n_seq_max = int(llama_cpp.llama_n_seq_max(context))
        self.bos_id = int(llama_cpp.llama_vocab_bos(self.vocab))
        self.eos_id = int(llama_cpp.llama_vocab_eos(self.vocab))
        pooling = int(llama_cpp.llama_pooling_type(context))
        # Rank pooling yields one score per classifier output, the others one vector.
        self.embedding_size = int(
            llama_cpp.llama_model_n_cls_out(model)
            if pooling == llama_cpp.LLAMA_POOLING_TYPE_RANK
            else llama_cpp.llama_model_n_embd(model)
        )
        self.causal = self._attends_causally()
        self._pieces: dict[int, bytes] = {}

    @classmethod
    def load(cls, settings: EngineSettings) -> ModelContext:
        """Load the GGUF and create the context; raises EngineLoadError."""
        _init_backend()
        if not os.path.isfile(settings.model_path):
            raise EngineLoadError(
                "model_cannot_be_loaded", f"model file does not exist: {settings.model_path}"
            )
        model_params = llama_cpp.llama_model_default_params()
        model_params.n_gpu_layers = settings.n_gpu_layers
        # Extra buffer types repack weights for the host's fastest kernels (AVX2, NEON, AMX);
        # on some hosts those kernels crash, so the agent decides per host (extra_buffers.py).
        # Undecided counts as off: the engine decides before it loads (engine.py).
        model_params.use_extra_bufts = settings.use_extra_buffers is True
        _recent_errors.clear()
        model = llama_cpp.llama_model_load_from_file(os.fsencode(settings.model_path), model_params)
        if not model:
            reason = _llama_errors("llama.cpp could not load it")
            raise EngineLoadError(
                "model_cannot_be_loaded", f"failed to load {settings.model_path}: {reason}"
            )
        _recent_errors.clear()
        try:
            context = llama_cpp.llama_init_from_model(model, _context_params(settings))
        except EngineLoadError:
            llama_cpp.llama_model_free(model)
            raise
        if not context:
            llama_cpp.llama_model_free(model)
            reason = _llama_errors("llama.cpp could not create it")
            raise EngineLoadError("slot_cannot_start", f"failed to create the context: {reason}")
        return cls(model, context, settings)

    def free(self) -> None:
        if self.ctx is not None:
            llama_cpp.llama_free(self.ctx)
            self.ctx = None
            self.memory = None
        if self.model is not None:
            llama_cpp.llama_model_free(self.model)
            self.model = None

    # Model facts.

    def metadata(self) -> dict[str, str]:
        """All GGUF metadata as strings, sorted by key (Paddler's ModelMetadata)."""
        entries: dict[str, str] = {}
        for index in range(int(llama_cpp.llama_model_meta_count(self.model))):
            key = _meta_string(llama_cpp.llama_model_meta_key_by_index, self.model, index)
            value = _meta_string(llama_cpp.llama_model_meta_val_str_by_index, self.model, index)
            if key is not None:
                entries[key] = value or ""
        return dict(sorted(entries.items()))

    def metadata_value(self, key: str) -> str | None:
        return _meta_string(llama_cpp.llama_model_meta_val_str, self.model, key.encode())

    def _attends_causally(self) -> bool:
        """Whether each token sees only the tokens before it, so sequences can share a prefix.

        Encoders (BERT and kin) and diffusion models run without a KV cache; a decoder can still
        be made bidirectional by ``<arch>.attention.causal``; recurrent state is not per token.
        """
        model = self.model
        if (
            self.memory is None
            or llama_cpp.llama_model_is_recurrent(model)
            or llama_cpp.llama_model_is_hybrid(model)
            or llama_cpp.llama_model_is_diffusion(model)
        ):
            return False
        architecture = self.metadata_value("general.architecture") or ""
        return self.metadata_value(f"{architecture}.attention.causal") != "false"

    def chat_template(self) -> str | None:
        raw = llama_cpp.llama_model_chat_template(self.model, None)
        return raw.decode("utf-8", errors="replace") if raw else None

    def special_token_text(self, token: int) -> str:
        return "" if token == NO_TOKEN else self.token_bytes(token).decode("utf-8", "replace")

    # Vocabulary.

    def tokenize(self, text: str, *, add_bos: bool, parse_special: bool) -> list[int]:
        """``add_bos`` adds the model's own prefix tokens (llama.cpp's ``add_special``)."""
        data = text.encode("utf-8")
        capacity = len(data) + 8
        while True:
            tokens = (llama_cpp.llama_token * capacity)()
            count = int(
                llama_cpp.llama_tokenize(
                    self.vocab, data, len(data), tokens, capacity, add_bos, parse_special
                )
            )
            if count >= 0:
                return list(tokens[:count])
            capacity = -count

    def token_bytes(self, token: int) -> bytes:
        """The bytes of one token, special tokens rendered as their text; cached per id."""
        piece = self._pieces.get(token)
        if piece is None:
            size = 64
            while True:
                buffer = ctypes.create_string_buffer(size)
                count = int(
                    llama_cpp.llama_token_to_piece(self.vocab, token, buffer, size, 0, True)
                )
                if count >= 0:
                    piece = buffer.raw[:count]
                    break
                size = -count
            self._pieces[token] = piece
        return piece

    def detokenize(self, tokens: list[int]) -> str:
        return b"".join(self.token_bytes(t) for t in tokens).decode("utf-8", errors="replace")

    def is_eog(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))

    # Context.

    def clear_sequence(self, seq_id: int, start: int = -1) -> bool:
        """Drop a sequence's KV from ``start`` (-1: all of it); False if llama.cpp cannot."""
        return bool(llama_cpp.llama_memory_seq_rm(self.memory, seq_id, start, -1))

    def clear_memory(self) -> None:
        llama_cpp.llama_memory_clear(self.memory, True)

    def save_sequence(self, seq_id: int) -> bytearray | None:
        """A copy of one sequence's state (its KV cells and their positions), for
        :meth:`restore_sequence` into any sequence of this context; None if llama.cpp fails."""
        size = int(llama_cpp.llama_state_seq_get_size(self.ctx, seq_id))
        data = bytearray(size)
        written = int(llama_cpp.llama_state_seq_get_data(self.ctx, _uint8s(data), size, seq_id))
        if written == 0:
            return None
        del data[written:]
        return data

    def restore_sequence(self, seq_id: int, data: bytearray) -> bool:
        """Replace a sequence with a state :meth:`save_sequence` gave; False if llama.cpp
        refuses it (short or foreign bytes, no room), and the sequence is then empty."""
        if int(llama_cpp.llama_state_seq_set_data(self.ctx, _uint8s(data), len(data), seq_id)):
            return True
        self.clear_sequence(seq_id)
        return False

    def pooled_embedding(self, seq_id: int) -> list[float] | None:
        """The pooled embedding of a sequence after a decode; None without pooling."""
        vector = llama_cpp.llama_get_embeddings_seq(self.ctx, seq_id)
        return list(vector[: self.embedding_size]) if vector else None

    def warm_up(self) -> None:
        """Decode a few BOS tokens per slot, as Paddler does, then forget them."""
        token = self.bos_id if self.bos_id != NO_TOKEN else max(self.eos_id, 0)
        per_slot = max(1, min(WARM_UP_TOKENS_PER_SLOT, self.n_batch // self.n_seq_max))
        count = per_slot * self.n_seq_max
        batch = llama_cpp.llama_batch_init(count, 0, 1)
        try:
            for index in range(count):
                seq_id, pos = divmod(index, per_slot)
                batch.token[index] = token
                batch.pos[index] = pos
                batch.n_seq_id[index] = 1
                batch.seq_id[index][0] = seq_id
                batch.logits[index] = pos == per_slot - 1
            batch.n_tokens = count
            status = int(llama_cpp.llama_decode(self.ctx, batch))
        finally:
            llama_cpp.llama_batch_free(batch)
        self.clear_memory()
        if status != 0:
            raise EngineLoadError("slot_cannot_start", f"warm-up decode failed ({status})")


def _uint8s(data: bytearray) -> Any:
    """``data`` as the ``uint8_t *`` llama.cpp reads or fills, without a copy."""
    return (ctypes.c_uint8 * len(data)).from_buffer(data)


def _context_params(settings: EngineSettings) -> Any:
    k_type = KV_CACHE_DTYPES.get(settings.k_cache_dtype)
    v_type = KV_CACHE_DTYPES.get(settings.v_cache_dtype)
    pooling = POOLING_TYPES.get(settings.pooling_type)
    if k_type is None or v_type is None:
        raise EngineLoadError(
            "slot_cannot_start",
            f"unknown KV cache dtype {settings.k_cache_dtype}/{settings.v_cache_dtype}",
        )
    if pooling is None:
        raise EngineLoadError("slot_cannot_start", f"unknown pooling type {settings.pooling_type}")
    if settings.slots < 1:
        raise EngineLoadError("slot_cannot_start", "at least one slot is needed")
    threads = settings.n_threads or default_thread_count()
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = settings.context_size
    params.n_batch = settings.n_batch
    params.n_ubatch = settings.n_batch
    params.n_seq_max = settings.slots
    params.n_threads = threads
    params.n_threads_batch = threads
    params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO
    params.type_k = k_type
    params.type_v = v_type
    params.embeddings = settings.enable_embeddings
    # Pooling only means something for embeddings; generative models warn when it is forced.
    if settings.enable_embeddings:
        params.pooling_type = pooling
    # One KV stream per sequence (llama.cpp's default): a slot never steals another's cells, and
    # attention only spans the slot's own tokens. Each sequence gets n_ctx / slots positions.
    # Embeddings need one shared stream: with one per sequence llama.cpp splits a batch into
    # equal-length micro-batches and then mean-pools sequences of unequal length wrongly.
    params.kv_unified = settings.enable_embeddings
    return params
