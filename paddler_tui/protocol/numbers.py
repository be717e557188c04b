"""Rust's fixed-width numbers as pydantic types.

serde rejects integers outside a field's Rust type, so the bounds are part of the wire contract.
``F32`` rounds to the nearest ``f32`` and keeps the shortest decimal that maps back to it, which is
what serde_json prints (``0.1f32`` travels as ``0.1``, not as ``0.10000000149011612``).
"""

from __future__ import annotations

import math
import struct
from typing import Annotated

from pydantic import AfterValidator, Field

I32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
U32 = Annotated[int, Field(ge=0, le=2**32 - 1)]
U64 = Annotated[int, Field(ge=0, le=2**64 - 1)]
# Paddler runs on 64-bit targets only.
USize = U64

_F32 = struct.Struct("<f")


def _f32_bits(value: float) -> bytes | None:
    try:
        return _F32.pack(value)
    except OverflowError:
        return None


def round_f32(value: float) -> float:
    """The shortest decimal (as a Python float) naming the ``f32`` nearest to ``value``."""
    if not math.isfinite(value):
        raise ValueError("f32 must be finite")
    bits = _f32_bits(value)
    if bits is None:
        raise ValueError("number out of range for f32")
    exact: float = _F32.unpack(bits)[0]
    for precision in range(1, 10):
        # Near the f32 maximum a short decimal can round up past it; _f32_bits gives None then.
        candidate = float(f"{exact:.{precision}g}")
        if _f32_bits(candidate) == bits:
            return candidate
    return exact  # pragma: no cover - nine significant digits always round-trip an f32


F32 = Annotated[float, AfterValidator(round_f32)]
