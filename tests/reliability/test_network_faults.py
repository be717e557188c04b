"""Network faults between an agent and its balancer (issue 13, part 4).

A real balancer and a real agent with the default model; the agent dials a
:class:`~tests.support.fault_proxy.ThreadedFaultProxy` that forwards to the balancer's
management service, and the test breaks that link:

- a silent partition mid-stream ends the client's stream with Paddler's 502 within the default
  heartbeat (2 s interval + 5 s timeout), the balancer drops the agent, and once the partition
  heals the agent rejoins by itself, without reloading its model, and serves;
- an RST mid-stream is a prompt 502, and the agent reconnects and serves;
- 100 ms of latency each way loses nothing and does not make tokens wait for round trips;
- a balancer restarted behind the proxy gets the agent back, without a reload.

The partition and heal times are printed (``pytest -s``) for the README.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from paddler_tui.protocol.agent_status import AgentControllerPoolSnapshot
from paddler_tui.protocol.envelope import ErrorDetails, ErrorEnvelope
from paddler_tui.protocol.inference_socket import InferenceServerMessage, ResponseEnvelope
from tests.reliability.streams import is_content, is_done
from tests.support.cluster import (
    AgentProcess,
    Cluster,
    SnapshotWatcher,
    collect,
    deterministic_state,
    http_client,
    ndjson,
    raw_prompt_body,
    watch_agents,
)
from tests.support.fault_proxy import ThreadedFaultProxy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

NAME = "agent-1"
RAW_PROMPT = "/api/v1/continue_from_raw_prompt"
AGENT_GONE = ErrorDetails(code=502, description="Agent controller connection closed")
# The default heartbeat finds a silent link within 2 s + 5 s; the rest is slack for 2 busy cores.
PARTITION_DETECTED_S = 10.0
RESET_DETECTED_S = 2.0
# The agent redials every second; a handshake held by the partition goes through on heal.
REJOIN_S = 15.0
# Long enough to be mid-stream through every fault: about 20 s of counting on one thread
# (the whole 2048-token context of a one-slot agent is its own).
LONG_TOKENS = 1500
# The agent logs "extra buffers on|off: why" each time it loads a model.
LOAD_LINE = re.compile(r"extra buffers (on|off): ")
LATENCY_S = 0.1
RATE_TOKENS = 64
# Well above the 5 tokens/s of a token per round trip, well below the agent's own pace.
MIN_DELAYED_RATE = 15.0

MakeCluster = Callable[[str], Cluster]


@dataclass
class Proxied:
    """A balancer and one agent that reaches it only through :attr:`proxy`."""

    cluster: Cluster
    proxy: ThreadedFaultProxy
    agent: AgentProcess
    slots: int

    @property
    def url(self) -> str:
        return f"{self.cluster.b.inference_url}{RAW_PROMPT}"

    def ready(self, snapshot: AgentControllerPoolSnapshot) -> bool:
        """The agent is registered with every slot ready and idle."""
        return any(
            agent.name == NAME
            and agent.slots_total == self.slots
            and agent.slots_processing == 0
            and agent.state_application_status == "Applied"
            for agent in snapshot.agents
        )

    def never_reloaded(self, snapshots: list[AgentControllerPoolSnapshot]) -> None:
        """One model load in the agent's life, and no snapshot showing it drained or loading."""
        assert self.agent.running()
        assert len(LOAD_LINE.findall(self.agent.log_text())) == 1, self.agent.log_tail()
        for snapshot in snapshots:
            for agent in snapshot.agents:
                assert agent.slots_total == self.slots, snapshot
                assert agent.state_application_status == "Applied", snapshot


@pytest.fixture
def proxied(make_cluster: MakeCluster) -> Iterator[Callable[..., Proxied]]:
    """Starts a balancer, a proxy to its management service and an agent behind the proxy."""
    proxies: list[ThreadedFaultProxy] = []

    def start(name: str, *, slots: int = 1, state_file: bool = False) -> Proxied:
        cluster = make_cluster(name)
        # A state file lets a restarted balancer hand the agent the state it already runs.
        flags = ["--state-database", f"file://{cluster.directory / 'state.json'}"]
        cluster.start_balancer(*(flags if state_file else []))
        cluster.put_state(deterministic_state())
        proxy = ThreadedFaultProxy.to(cluster.b.management_addr).start()
        proxies.append(proxy)
        agent = AgentProcess(
            proxy.addr,
            slots=slots,
            name=NAME,
            log=cluster.directory / f"{NAME}.log",
            env=cluster.env,
            threads=1,
        )
        cluster.agents.append(agent)
        cluster.wait_for_agents(1, slots_each=slots)
        return Proxied(cluster, proxy, agent, slots)

    yield start
    for proxy in proxies:
        proxy.stop()


Stream = AsyncGenerator[InferenceServerMessage, None]


async def started(client: httpx.AsyncClient, url: str, max_tokens: int) -> tuple[str, Stream]:
    """A raw-prompt request that the agent has begun to answer: its id and the rest."""
    stream = ndjson(client, url, raw_prompt_body(max_tokens))
    first = await anext(stream)
    assert is_content(first), first
    assert isinstance(first, ResponseEnvelope)
    assert first.generated_by == NAME
    return first.request_id, stream


async def ends_with_agent_gone(request_id: str, stream: Stream) -> None:
    rest = [message async for message in stream]
    assert rest[-1] == ErrorEnvelope(request_id=request_id, error=AGENT_GONE), rest[-3:]
    assert all(is_content(message) for message in rest[:-1])


def tokens_of(messages: list[InferenceServerMessage], max_tokens: int) -> None:
    """The whole answer: every token, by the agent, then Done."""
    assert is_done(messages[-1]), messages[-3:]
    assert sum(map(is_content, messages)) == max_tokens
    assert all(isinstance(m, ResponseEnvelope) and m.generated_by == NAME for m in messages)


async def serves(client: httpx.AsyncClient, proxied: Proxied) -> None:
    tokens_of(await collect(client, proxied.url, raw_prompt_body(8)), 8)


async def dropped_then_ready(
    agents: SnapshotWatcher[AgentControllerPoolSnapshot], proxied: Proxied, since: int
) -> None:
    """Until the snapshots published from ``since`` on show the agent gone, then ready again."""

    def seen(_: AgentControllerPoolSnapshot) -> bool:
        snapshots = agents.snapshots[since:]
        gone = [i for i, s in enumerate(snapshots) if all(a.name != NAME for a in s.agents)]
        return bool(gone) and any(proxied.ready(s) for s in snapshots[gone[0] :])

    await agents.until(seen, timeout=REJOIN_S + PARTITION_DETECTED_S)


async def test_a_silent_partition_is_a_502_and_the_agent_rejoins_after_it_without_reloading(
    proxied: Callable[..., Proxied],
) -> None:
    p = proxied("partition")
    loop = asyncio.get_running_loop()
    async with watch_agents(p.cluster.b) as agents, http_client() as client:
        request_id, stream = await started(client, p.url, LONG_TOKENS)
        p.proxy.blackhole()
        partitioned_at = loop.time()
        await ends_with_agent_gone(request_id, stream)
        failed_s = loop.time() - partitioned_at
        assert failed_s < PARTITION_DETECTED_S

        await agents.until(lambda s: not s.agents, timeout=PARTITION_DETECTED_S)
        dropped_s = loop.time() - partitioned_at
        assert dropped_s < PARTITION_DETECTED_S
        assert p.cluster.agents_snapshot().agents == []

        since_heal = len(agents.snapshots)
        p.proxy.heal()
        healed_at = loop.time()
        await agents.until(p.ready, timeout=REJOIN_S)
        rejoined_s = loop.time() - healed_at
        p.never_reloaded(agents.snapshots[since_heal:])
        await serves(client, p)
    # The agent's own heartbeat noticed the silent link, and its log says so.
    assert "balancer connection lost: " in p.agent.log_text(), p.agent.log_tail()
    assert "keepalive ping timeout" in p.agent.log_text(), p.agent.log_tail()
    print(
        f"\nsilent partition: 502 after {failed_s:.2f} s, agent dropped after {dropped_s:.2f} s;"
        f" healed: agent back and ready after {rejoined_s:.2f} s"
    )


async def test_a_reset_mid_stream_is_a_prompt_502_and_the_agent_reconnects(
    proxied: Callable[..., Proxied],
) -> None:
    p = proxied("reset")
    loop = asyncio.get_running_loop()
    async with watch_agents(p.cluster.b) as agents, http_client() as client:
        request_id, stream = await started(client, p.url, LONG_TOKENS)
        since = len(agents.snapshots)
        assert p.proxy.reset() == 1
        reset_at = loop.time()
        await ends_with_agent_gone(request_id, stream)
        failed_s = loop.time() - reset_at
        assert failed_s < RESET_DETECTED_S
        await dropped_then_ready(agents, p, since)
        rejoined_s = loop.time() - reset_at
        p.never_reloaded(agents.snapshots[since:])
        await serves(client, p)
    assert "balancer connection lost: " in p.agent.log_text(), p.agent.log_tail()
    print(f"\nreset: 502 after {failed_s:.2f} s, agent back and ready after {rejoined_s:.2f} s")


async def measured_rate(client: httpx.AsyncClient, url: str, max_tokens: int) -> float:
    """Tokens per second between the first token and the last of one whole answer."""
    loop = asyncio.get_running_loop()
    times: list[float] = []
    messages: list[InferenceServerMessage] = []
    async for message in ndjson(client, url, raw_prompt_body(max_tokens)):
        messages.append(message)
        if is_content(message):
            times.append(loop.time())
    tokens_of(messages, max_tokens)
    return (len(times) - 1) / (times[-1] - times[0])


async def test_latency_each_way_loses_nothing_and_does_not_pace_the_tokens(
    proxied: Callable[..., Proxied],
) -> None:
    p = proxied("latency", slots=2)
    async with http_client() as client:
        baseline_rate = await measured_rate(client, p.url, RATE_TOKENS)
        p.proxy.latency(LATENCY_S)
        # More requests than slots: one waits in the balancer's buffer, then runs.
        answers = await asyncio.gather(
            *(collect(client, p.url, raw_prompt_body(32)) for _ in range(3))
        )
        for answer in answers:
            tokens_of(answer, 32)
        delayed_rate = await measured_rate(client, p.url, RATE_TOKENS)
    # A token that waited for a round trip would cap the rate at 1 / (2 * latency) = 5/s.
    assert delayed_rate > MIN_DELAYED_RATE
    # No heartbeat gave up on the slow link: the agent connected once.
    assert p.agent.log_text().count("connected to ") == 1, p.agent.log_tail()
    assert p.proxy.bytes_downstream > 0
    print(
        f"\n{LATENCY_S * 1000:.0f} ms each way: {delayed_rate:.1f} tokens/s"
        f" (without: {baseline_rate:.1f} tokens/s)"
    )


async def test_a_balancer_restarted_behind_the_proxy_gets_the_agent_back_unreloaded(
    proxied: Callable[..., Proxied],
) -> None:
    p = proxied("restart", state_file=True)
    loop = asyncio.get_running_loop()
    accepted = p.proxy.accepted
    p.cluster.restart_balancer()
    restarted_at = loop.time()
    async with watch_agents(p.cluster.b) as agents, http_client() as client:
        await agents.until(p.ready, timeout=REJOIN_S)
        rejoined_s = loop.time() - restarted_at
        p.never_reloaded(agents.snapshots)
        await serves(client, p)
    # It came back through the proxy, on a connection of its own.
    assert p.proxy.accepted > accepted
    assert "balancer connection lost: " in p.agent.log_text(), p.agent.log_tail()
    print(f"\nbalancer restart: agent back and ready {rejoined_s:.2f} s after it answered")
