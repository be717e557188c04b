"""How the embeddings screen shows numbers: heat-map colours and vector cells."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

RGB = tuple[int, int, int]

# Viridis stops: perceptually even and readable for colour-blind users, dark to light.
_HEAT_STOPS: tuple[tuple[float, RGB], ...] = (
    (0.0, (68, 1, 84)),
    (0.25, (59, 82, 139)),
    (0.5, (33, 145, 140)),
    (0.75, (94, 201, 98)),
    (1.0, (253, 231, 37)),
)


def heat_colour(similarity: float) -> RGB:
    """The heat-map colour of a similarity: 0 and below darkest, 1 brightest.

    Text embeddings rarely point away from each other, so the scale spends its whole range on
    [0, 1] instead of wasting half of it on negatives.
    """
    position = max(0.0, min(1.0, similarity))
    for (low, low_rgb), (high, high_rgb) in itertools.pairwise(_HEAT_STOPS):
        if position <= high:
            fraction = (position - low) / (high - low)
            red, green, blue = (
                round(a + (b - a) * fraction) for a, b in zip(low_rgb, high_rgb, strict=True)
            )
            return red, green, blue
    return _HEAT_STOPS[-1][1]  # pragma: no cover - position <= 1.0 always matches a stop


def contrasting_text(background: RGB) -> RGB:
    """Black or white, whichever reads better on ``background`` (relative luminance)."""
    red, green, blue = background
    luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue
    return (0, 0, 0) if luminance > 140 else (255, 255, 255)


def format_values(vector: Sequence[float], count: int) -> str:
    """The first ``count`` components, for a table cell."""
    shown = ", ".join(f"{value:+.3f}" for value in vector[:count])
    return f"{shown}, …" if len(vector) > count else shown
