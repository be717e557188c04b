from __future__ import annotations

from paddler_tui.protocol.agent_socket import PromptCacheRam
from paddler_tui.server.balancer.metrics import (
    PROMETHEUS_CONTENT_TYPE,
    AgentPromptTokens,
    render_prometheus,
    render_prometheus_counters,
)


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


def test_counters_follow_in_the_same_format_with_escaped_agent_ids() -> None:
    text = render_prometheus_counters(
        "paddler_",
        [AgentPromptTokens("a", 30, 20), AgentPromptTokens('b"\\\n', 5, 0)],
        {"prefix_hit": 2, "least_busy": 1},
    )

    assert text == (
        "# HELP paddler_prompt_tokens_total Prompt tokens of the generations each agent finished\n"
        "# TYPE paddler_prompt_tokens_total counter\n"
        'paddler_prompt_tokens_total{agent="a"} 30\n'
        'paddler_prompt_tokens_total{agent="b\\"\\\\\\n"} 5\n'
        "\n"
        "# HELP paddler_prompt_cache_hit_tokens_total Prompt tokens of those generations that "
        "the agent's caches held\n"
        "# TYPE paddler_prompt_cache_hit_tokens_total counter\n"
        'paddler_prompt_cache_hit_tokens_total{agent="a"} 20\n'
        'paddler_prompt_cache_hit_tokens_total{agent="b\\"\\\\\\n"} 0\n'
        "\n"
        "# HELP paddler_routing_decisions_total Generation requests by how their agent was chosen\n"
        "# TYPE paddler_routing_decisions_total counter\n"
        'paddler_routing_decisions_total{decision="prefix_hit"} 2\n'
        'paddler_routing_decisions_total{decision="fallback"} 0\n'
        'paddler_routing_decisions_total{decision="least_busy"} 1\n'
        "\n"
        "# HELP paddler_prompt_cache_ram_states Sequences each agent's prompt cache in host "
        "memory keeps\n"
        "# TYPE paddler_prompt_cache_ram_states gauge\n"
        "\n"
        "# HELP paddler_prompt_cache_ram_bytes Bytes each agent's prompt cache in host memory "
        "keeps\n"
        "# TYPE paddler_prompt_cache_ram_bytes gauge\n"
    )


def test_the_prompt_caches_in_ram_are_gauges_of_the_agents_that_report_them() -> None:
    ram = PromptCacheRam(states=2, bytes=4096, budget_bytes=None)
    text = render_prometheus_counters(
        "paddler_",
        [AgentPromptTokens("a", 30, 20, ram=ram), AgentPromptTokens("b", 5, 0)],
        {},
    )

    samples = [line for line in text.splitlines() if line.startswith("paddler_prompt_cache_ram")]
    assert samples == [
        'paddler_prompt_cache_ram_states{agent="a"} 2',
        'paddler_prompt_cache_ram_bytes{agent="a"} 4096',
    ]


def test_counters_without_agents_keep_their_headers() -> None:
    text = render_prometheus_counters("foo_", [], {})

    assert "# TYPE foo_prompt_tokens_total counter\n\n" in text
    assert 'foo_routing_decisions_total{decision="fallback"} 0\n' in text
