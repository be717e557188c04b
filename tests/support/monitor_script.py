"""Deterministic monitor data of a two-agent cluster, as the socket sends it: a busy minute, and
half a minute of cached chats."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from paddler_tui.protocol.agent_issue import ModelFileDoesNotExist
from paddler_tui.protocol.monitor import (
    MonitorAgent,
    MonitorBuffer,
    MonitorEvent,
    MonitorEventKind,
    MonitorLocalAgent,
    MonitorRequest,
    MonitorTimeouts,
    MonitorUpdate,
    RequestPhase,
    RoutingCounts,
)
from paddler_tui.protocol.usage import TokenUsage

# 2026-01-01 12:00:00 UTC, in milliseconds.
T0 = 1_767_268_800_000
# Extra-buffers verdicts as a paddler-tui agent words them (issue #12).
PROBE_PASSED = "auto: the probe decoded with extra buffers on this host"
PROBE_CRASHED = (
    "auto: the extra-buffers probe killed by SIGSEGV while decoding with them; loading without "
    "them (llama-server's --no-repack)"
)
REPACK_ON: dict[str, Any] = {"extra_buffers": True, "extra_buffers_reason": PROBE_PASSED}
REPACK_CRASHED: dict[str, Any] = {"extra_buffers": False, "extra_buffers_reason": PROBE_CRASHED}


def monitor_agent(agent_id: str, name: str | None, **fields: Any) -> MonitorAgent:
    values: dict[str, Any] = {
        "id": agent_id,
        "name": name,
        "model_path": "/models/SmolLM2-135M-Instruct.Q4_1.gguf",
        "state_application_status": "Applied",
        "slots_total": 2,
        "slots_busy": 0,
        "download_current": 0,
        "download_total": 0,
        "download_filename": None,
        "issues": [],
    }
    values.update(fields)
    return MonitorAgent(**values)


def request(
    request_id: str, *, phase: RequestPhase, agent: str | None, started: int, last: int, tokens: int
) -> MonitorRequest:
    return MonitorRequest(
        id=request_id,
        kind="conversation",
        phase=phase,
        agent_id=agent,
        agent_name=agent,
        started_at=started,
        last_item_at=last,
        tokens=tokens,
    )


def update(
    second: int,
    *,
    agents: list[MonitorAgent],
    requests: Sequence[MonitorRequest] = (),
    buffered: int = 0,
    events: Sequence[MonitorEvent] = (),
    local_agents: Sequence[MonitorLocalAgent] = (),
) -> MonitorUpdate:
    return MonitorUpdate(
        server_time=T0 + second * 1000,
        agents=agents,
        buffer=MonitorBuffer(buffered=buffered, max_buffered=30, timeout_ms=10_000),
        requests=list(requests),
        timeouts=MonitorTimeouts(
            buffered_request_timeout_ms=10_000, inference_item_timeout_ms=30_000
        ),
        events=list(events),
        local_agents=list(local_agents),
    )


def event(second: int, kind: MonitorEventKind, message: str, **fields: Any) -> MonitorEvent:
    return MonitorEvent(at=T0 + second * 1000, kind=kind, message=message, **fields)


def busy_minute() -> list[MonitorUpdate]:
    """Agents join, requests run and pile up, one agent is lost (502), a buffer timeout (504).

    alpha's extra-buffers probe crashed, so it runs without repacking; beta never says; gamma
    repacks (its verdict is from the model it had before the download). alpha and beta are
    ``serve``'s local agents: beta crashed (for the second time) and waits to restart; gamma
    is an agent from elsewhere.
    """
    usage = TokenUsage.zero().model_copy(update={"content_tokens": 40})
    updates = [
        update(
            0,
            agents=[monitor_agent("a1", "alpha", **REPACK_CRASHED), monitor_agent("a2", "beta")],
            events=[
                event(0, "agent_joined", "alpha joined", agent_id="a1", agent_name="alpha"),
                event(0, "agent_joined", "beta joined", agent_id="a2", agent_name="beta"),
            ],
        )
    ]
    for second in range(1, 40):
        busy_alpha = 2 if second % 10 < 6 else 1
        updates.append(
            update(
                second,
                agents=[
                    monitor_agent("a1", "alpha", slots_busy=busy_alpha, **REPACK_CRASHED),
                    monitor_agent("a2", "beta", slots_busy=second % 3),
                ],
                buffered=second % 4,
                requests=[
                    request(
                        "r-steady",
                        phase="running",
                        agent="alpha",
                        started=T0,
                        last=T0 + second * 1000,
                        tokens=second * 12,
                    ),
                ],
            )
        )
    updates.append(
        update(
            40,
            agents=[
                monitor_agent("a1", "alpha", slots_busy=2, **REPACK_CRASHED),
                monitor_agent(
                    "a3",
                    "gamma",
                    model_path=None,
                    state_application_status="AttemptedAndRetrying",
                    slots_total=0,
                    download_current=300 * 2**20,
                    download_total=1200 * 2**20,
                    download_filename="Qwen3-0.6B-Q8_0.gguf",
                    issues=[ModelFileDoesNotExist(model_path="/models/missing.gguf")],
                    **REPACK_ON,
                ),
            ],
            buffered=3,
            requests=[
                request(
                    "r-steady",
                    phase="running",
                    agent="alpha",
                    started=T0,
                    last=T0 + 39_000,
                    tokens=480,
                ),
                request(
                    "r-slow",
                    phase="running",
                    agent="alpha",
                    started=T0 + 10_000,
                    last=T0 + 20_000,
                    tokens=7,
                ),
                request(
                    "r-stuck",
                    phase="running",
                    agent="alpha",
                    started=T0 + 5_000,
                    last=T0 + 12_000,
                    tokens=3,
                ),
                request(
                    "r-queued",
                    phase="buffered",
                    agent=None,
                    started=T0 + 37_000,
                    last=T0 + 37_000,
                    tokens=0,
                ),
            ],
            events=[
                event(
                    31,
                    "request_completed",
                    "Done",
                    request_id="r-old",
                    agent_name="beta",
                    usage=usage,
                    tokens_per_second=20.0,
                ),
                event(
                    33,
                    "agent_lost",
                    "Agent controller connection closed",
                    request_id="r-lost",
                    agent_id="a2",
                    agent_name="beta",
                ),
                event(33, "agent_left", "beta left", agent_id="a2", agent_name="beta"),
                event(34, "agent_joined", "gamma joined", agent_id="a3", agent_name="gamma"),
                event(
                    36,
                    "buffer_timeout",
                    "Waiting for available slot timed out",
                    request_id="r-late",
                ),
                event(
                    38,
                    "client_cancelled",
                    "the client left; stopping the agent",
                    request_id="r-gone",
                    agent_name="alpha",
                ),
            ],
            local_agents=[
                MonitorLocalAgent(name="alpha", pid=4101, log_file="/logs/alpha.log"),
                MonitorLocalAgent(
                    name="beta",
                    state="restarting",
                    restarts=1,
                    last_exit="killed by SIGSEGV",
                    next_restart_in_ms=2000,
                    log_file="/logs/beta.log",
                ),
            ],
        )
    )
    return updates


@dataclass
class _AgentTotals:
    prompt: int = 0
    cached: int = 0
    routed: RoutingCounts = field(default_factory=RoutingCounts)

    def add_turn(self, prompt: int, cached: int, routing: str) -> None:
        self.prompt += prompt
        self.cached += cached
        self.routed = self.routed.model_copy(update={routing: getattr(self.routed, routing) + 1})


def cached_chats() -> list[MonitorUpdate]:
    """Half a minute of chats on two agents that route by prefix and cache prompts (issue #15).

    Each agent finishes one turn a second; a turn's prompt is the whole conversation so far, and
    all of it but the new message comes from a cache, except on a conversation's first turn (sent
    to the least busy agent) and on some of beta's turns, which find their agent busy and fall
    back to a slot that holds nothing of them.
    """
    names = {"a1": "alpha", "a2": "beta"}
    totals = {agent_id: _AgentTotals() for agent_id in names}
    updates = []
    for second in range(31):
        for agent_id, turn in (("a1", second % 10), ("a2", (second + 3) % 10)):
            prompt = 60 + 50 * turn
            if turn == 0:
                totals[agent_id].add_turn(prompt, 0, "least_busy")
            elif agent_id == "a2" and second % 5 == 4:
                totals[agent_id].add_turn(prompt, 0, "fallback")
            else:
                totals[agent_id].add_turn(prompt, prompt - 50, "prefix_hit")
        agents = [
            monitor_agent(
                agent_id,
                name,
                slots_busy=1 + (second + index) % 2,
                prompt_tokens=totals[agent_id].prompt,
                cached_prompt_tokens=totals[agent_id].cached,
                routed=totals[agent_id].routed,
            )
            for index, (agent_id, name) in enumerate(names.items())
        ]
        updates.append(update(second, agents=agents))
    return updates
