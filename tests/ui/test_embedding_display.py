from __future__ import annotations

from paddler_tui.ui.embedding_display import contrasting_text, format_values, heat_colour


def test_heat_colour_runs_dark_to_bright_and_clamps() -> None:
    assert heat_colour(-0.5) == heat_colour(0.0) == (68, 1, 84)
    assert heat_colour(1.0) == heat_colour(2.0) == (253, 231, 37)
    assert heat_colour(0.125) == (64, 42, 112)  # halfway between the first two stops
    assert contrasting_text(heat_colour(0.0)) == (255, 255, 255)
    assert contrasting_text(heat_colour(1.0)) == (0, 0, 0)


def test_format_values_shows_an_ellipsis_when_cut() -> None:
    assert format_values([0.5, -0.25], 3) == "+0.500, -0.250"
    assert format_values([0.5, -0.25, 1.0], 2) == "+0.500, -0.250, …"
