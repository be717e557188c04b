"""Deterministic cleanup of async iterators the client library types as plain ``AsyncIterator``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TypeVar

T = TypeVar("T")


@contextlib.asynccontextmanager
async def closing(iterator: AsyncIterator[T]) -> AsyncIterator[AsyncIterator[T]]:
    """Like :func:`contextlib.aclosing`, for an iterator that may lack ``aclose``.

    The client's streams are async generators holding a connection; leaving a loop early must
    close that connection now, not whenever the generator is collected.
    """
    try:
        yield iterator
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
