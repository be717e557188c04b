from __future__ import annotations

from paddler_tui.server.balancer.metrics import PROMETHEUS_CONTENT_TYPE, render_prometheus


def test_prometheus_text_matches_paddler_byte_for_byte() -> None:
    text = render_prometheus("paddler_", slots_processing=1, slots_total=4, requests_buffered=3)
    assert text == (
        "# HELP paddler_slots_processing Number of processing slots\n"
        "# TYPE paddler_slots_processing gauge\n"
        "paddler_slots_processing 1\n"
        "\n"
        "# HELP paddler_slots_total Number of total slots\n"
        "# TYPE paddler_slots_total gauge\n"
        "paddler_slots_total 4\n"
        "\n"
        "# HELP paddler_requests_buffered Number of buffered requests\n"
        "# TYPE paddler_requests_buffered gauge\n"
        "paddler_requests_buffered 3\n"
    )


def test_prefix_is_joined_without_a_separator() -> None:
    text = render_prometheus("foo_", slots_processing=0, slots_total=2, requests_buffered=0)
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert samples == ["foo_slots_processing 0", "foo_slots_total 2", "foo_requests_buffered 0"]


def test_content_type() -> None:
    assert PROMETHEUS_CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8; escaping=values"
