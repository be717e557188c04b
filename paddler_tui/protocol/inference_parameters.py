"""``InferenceParameters``: the llama.cpp and sampling settings of the whole cluster."""

from __future__ import annotations

from typing import Literal

from paddler_tui.protocol.numbers import F32, I32, U32, USize
from paddler_tui.protocol.wire import WireModel

KvCacheDtype = Literal["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "IQ4_NL", "Q5_0", "Q5_1"]
PoolingType = Literal["Unspecified", "None", "Mean", "Cls", "Last", "Rank"]


class InferenceParameters(WireModel):
    """Every field is required on the wire; :meth:`default` gives Paddler's defaults."""

    n_batch: USize
    context_size: U32
    embedding_batch_size: USize
    enable_embeddings: bool
    image_resize_to_fit: U32
    k_cache_dtype: KvCacheDtype
    v_cache_dtype: KvCacheDtype
    min_p: F32
    n_gpu_layers: I32
    penalty_frequency: F32
    penalty_last_n: I32
    penalty_presence: F32
    penalty_repeat: F32
    pooling_type: PoolingType
    temperature: F32
    top_k: I32
    top_p: F32

    @classmethod
    def default(cls) -> InferenceParameters:
        return cls(
            n_batch=2048,
            context_size=8192,
            embedding_batch_size=256,
            enable_embeddings=False,
            image_resize_to_fit=1024,
            k_cache_dtype="Q8_0",
            v_cache_dtype="Q8_0",
            min_p=0.05,
            n_gpu_layers=0,
            penalty_frequency=0.0,
            penalty_last_n=-1,
            penalty_presence=0.8,
            penalty_repeat=1.1,
            pooling_type="Last",
            temperature=0.8,
            top_k=80,
            top_p=0.8,
        )

    def validation_error(self) -> str | None:
        """The 400 text Paddler answers a PUT of these parameters with, or ``None`` if valid.

        Kept apart from parsing because a zero is well-formed JSON that only the PUT rejects.
        """
        if self.image_resize_to_fit == 0:
            return "image_resize_to_fit must be greater than zero"
        if self.embedding_batch_size == 0:
            return "embedding_batch_size must be greater than zero"
        return None
