"""Request and agent ids: nanoid strings, as Paddler generates them."""

from __future__ import annotations

import secrets

NANOID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
NANOID_LENGTH = 21


def new_id() -> str:
    """21 characters from ``A-Za-z0-9_-``; 64 symbols, so ``choice`` has no modulo bias."""
    return "".join(secrets.choice(NANOID_ALPHABET) for _ in range(NANOID_LENGTH))
