"""``paddler-tui status`` prints each agent's prompt-cache hits and routing counts once the
balancer sent it requests, and nothing of them for an agent that has had none; and what each
agent's prompt cache in RAM keeps, once the agent reports it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from paddler_tui.protocol.agent_socket import PromptCacheRam
from paddler_tui.protocol.monitor import RoutingCounts
from paddler_tui.server.serve_command import run_status
from tests.serve.recorded_state import record
from tests.support.fake_balancer import AgentTraffic, FakeBalancer, FakeScript

MODEL = "/models/SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PADDLER_TUI_STATE_DIR", str(tmp_path))
    yield


def test_status_prints_each_agents_cache_hits_and_routing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    script = FakeScript(
        live_monitor=True,
        traffic={
            "a1": AgentTraffic(
                prompt_tokens=2000,
                cached_prompt_tokens=1234,
                routed=RoutingCounts(prefix_hit=12, fallback=3, least_busy=5),
            ),
            # Routed a request that has not finished: no tokens yet.
            "a2": AgentTraffic(routed=RoutingCounts(least_busy=1)),
        },
    )
    with FakeBalancer(script) as fake:
        record(fake)
        assert run_status(api_key=None) == 0
    assert capsys.readouterr().out.splitlines()[-4:] == [
        f"agent alpha: 0/2 slots busy, Applied, model {MODEL}",
        "  prompt cache: 1234/2000 prompt tokens (62%); "
        "routed: 12 prefix hit, 3 fallback, 5 least busy",
        f"agent beta: 0/2 slots busy, Applied, model {MODEL}",
        "  prompt cache: 0/0 prompt tokens (—); routed: 0 prefix hit, 0 fallback, 1 least busy",
    ]


def test_an_agent_without_requests_gets_no_cache_line(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeBalancer(FakeScript(live_monitor=True)) as fake:
        record(fake)
        assert run_status(api_key=None) == 0
    assert "prompt cache" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("ram", "line"),
    [
        (
            PromptCacheRam(states=3, bytes=13 * 2**20, budget_bytes=8192 * 2**20),
            "  prompt cache in RAM: 3 states, 13.0 of 8192.0 MiB",
        ),
        (
            PromptCacheRam(states=1, bytes=2**19, budget_bytes=None),
            "  prompt cache in RAM: 1 states, 0.5 MiB, no limit",
        ),
        (PromptCacheRam(states=0, bytes=0, budget_bytes=0), "  prompt cache in RAM: off"),
    ],
)
def test_status_prints_what_each_agents_prompt_cache_in_ram_keeps(
    ram: PromptCacheRam, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    script = FakeScript(live_monitor=True, traffic={"a1": AgentTraffic(prompt_cache_ram=ram)})
    with FakeBalancer(script) as fake:
        record(fake)
        assert run_status(api_key=None) == 0
    lines = capsys.readouterr().out.splitlines()
    alpha = lines.index(f"agent alpha: 0/2 slots busy, Applied, model {MODEL}")
    assert lines[alpha + 1] == line
    assert "prompt cache in RAM" not in "\n".join(lines[alpha + 2 :])  # beta reports none
