"""The agent run in this process against a test balancer endpoint, so that llama.cpp's calls can
be watched: which thread computes, and how the model is loaded."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp
import pytest

from paddler_tui.models import default_model_path
from paddler_tui.net_address import HostPort
from paddler_tui.protocol.agent_socket import ExtraBuffers, PromptCacheRam, UpdateAgentHost
from paddler_tui.protocol.embedding import EmbeddingDone, NoNormalization
from paddler_tui.protocol.envelope import ContinueFromRawPrompt
from paddler_tui.protocol.generated_token import Done, GeneratedTokenResult
from paddler_tui.protocol.model_source import LocalToAgent
from paddler_tui.protocol.usage import TokenUsage
from paddler_tui.server.agent.engine import extra_buffers
from paddler_tui.server.agent.engine.extra_buffers import ExtraBuffersMode, probe_verdict_sync
from paddler_tui.server.agent.engine.thread import THREAD_NAME
from paddler_tui.server.agent.engine.types import DEFAULT_PROMPT_CACHE_RAM_MIB
from paddler_tui.server.agent.main import serve_agent
from tests.agent.agent_session import AgentSession, raw_prompt
from tests.agent.balancer_endpoint import AgentRecord, BalancerEndpoint
from tests.agent.conftest import desired_state
from tests.support.cluster import AgentProcess

# Every llama.cpp entry point that computes, creates or frees what computes, or copies a
# sequence's state in or out of the KV cache.
COMPUTING = (
    "llama_model_load_from_file",
    "llama_init_from_model",
    "llama_decode",
    "llama_encode",
    "llama_free",
    "llama_model_free",
    "llama_state_seq_get_data",
    "llama_state_seq_set_data",
)
# Raw prompts long enough for the prompt cache to save, alike only in their first words.
STORY = (
    "Story number {}. The old lighthouse keeper climbed the stairs every evening, counted the "
    "ships on the horizon, wrote their names in a worn notebook, listened to the wind rattle "
    "the windows of the lamp room, and waited for the fog to roll in from the sea."
)


@dataclass
class LlamaCalls:
    """Which thread made each computing llama.cpp call, and the model parameters used."""

    threads: dict[str, set[str]] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    extra_bufts: list[bool] = field(default_factory=list)
    # False where extra buffers crash this host: what was asked is recorded, then the load
    # goes ahead without them, so that proving "on" never brings the test run down.
    allow_extra_bufts: bool = True

    def watch(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in COMPUTING:
            monkeypatch.setattr(llama_cpp, name, self._wrap(name, getattr(llama_cpp, name)))

    def _wrap(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            self.threads.setdefault(name, set()).add(threading.current_thread().name)
            self.counts[name] += 1
            if name == "llama_model_load_from_file":
                self.extra_bufts.append(bool(args[1].use_extra_bufts))
                args[1].use_extra_bufts = args[1].use_extra_bufts and self.allow_extra_bufts
            return real(*args)

        return call


@dataclass
class InProcessAgent:
    session: AgentSession
    stopping: asyncio.Event

    @property
    def record(self) -> AgentRecord:
        return self.session.agent


@contextlib.asynccontextmanager
async def in_process_agent(
    *, slots: int = 2, extra_buffers: ExtraBuffersMode = "auto"
) -> AsyncIterator[InProcessAgent]:
    async with BalancerEndpoint().running() as endpoint:
        stopping = asyncio.Event()
        agent = asyncio.create_task(
            serve_agent(
                management_addr=HostPort("127.0.0.1", endpoint.port),
                slots=slots,
                name="in-process",
                threads=2,
                stopping=stopping,
                extra_buffers=extra_buffers,
            )
        )
        try:
            record = await endpoint.agent()
            process: AgentProcess | None = None  # the agent is this process
            session = AgentSession(endpoint, record, process, slots)
            yield InProcessAgent(session, stopping)
        finally:
            stopping.set()
            await asyncio.wait_for(agent, 30)


async def reload(agent: InProcessAgent, **parameters: Any) -> None:
    """Send a state that needs a new engine; wait until the agent serves it."""
    record = agent.record
    seen = len(record.snapshots)
    await agent.session.endpoint.set_state(record, desired_state(**parameters))
    async with asyncio.timeout(120):
        while True:
            newer = record.snapshots[seen:]
            unloaded = [i for i, status in enumerate(newer) if status.slots_total == 0]
            if unloaded and any(
                status.state_application_status == "Applied" and status.slots_total
                for status in newer[unloaded[0] :]
            ):
                return
            record.changed.clear()
            await record.changed.wait()


def story(number: int) -> ContinueFromRawPrompt:
    return raw_prompt(STORY.format(number), 4)


def usage(results: list[GeneratedTokenResult]) -> TokenUsage:
    done = results[-1]
    assert isinstance(done, Done), done
    return done.usage


async def reported_host(record: AgentRecord) -> UpdateAgentHost:
    async with asyncio.timeout(30):
        while not record.hosts:
            record.changed.clear()
            await record.changed.wait()
    return record.hosts[-1]


async def host_after(
    record: AgentRecord, seen: int, holds: Callable[[UpdateAgentHost], bool]
) -> UpdateAgentHost:
    """The first host report after the first ``seen`` that ``holds``."""
    async with asyncio.timeout(30):
        while True:
            for host in record.hosts[seen:]:
                if holds(host):
                    return host
            record.changed.clear()
            await record.changed.wait()


def ram_states(host: UpdateAgentHost) -> int | None:
    return host.prompt_cache_ram.states if host.prompt_cache_ram is not None else None


async def test_the_agent_reports_what_its_prompt_cache_in_ram_keeps_and_a_reload_empties_it() -> (
    None
):
    async with in_process_agent(slots=1) as agent:
        session = agent.session
        await session.apply()
        empty = await host_after(agent.record, 0, lambda host: ram_states(host) == 0)
        assert empty.prompt_cache_ram == PromptCacheRam(
            states=0, bytes=0, budget_bytes=DEFAULT_PROMPT_CACHE_RAM_MIB * 2**20
        )
        await session.generate(story(1))
        await session.generate(story(2))  # takes the only slot: story 1 is saved
        saved = await host_after(agent.record, 0, lambda host: ram_states(host) == 1)
        assert saved.prompt_cache_ram is not None and saved.prompt_cache_ram.bytes > 0
        seen = len(agent.record.hosts)
        await reload(agent, context_size=1024)
        await host_after(agent.record, seen, lambda host: ram_states(host) == 0)


async def test_every_computation_runs_on_the_one_engine_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = LlamaCalls()
    calls.watch(monkeypatch)
    async with in_process_agent() as agent:
        session = agent.session
        await reload(agent, context_size=1024)
        results = await asyncio.gather(
            *(session.generate(raw_prompt(f"Count to {n}:", 8)) for n in (3, 4))
        )
        assert all(isinstance(r[-1], Done) for r in results)
        # Two slots, three long prompts, then the first again: the third takes the first one's
        # slot and saves its sequence, which the fourth restores into the other slot.
        for number in (1, 2, 3, 1):
            assert isinstance((await session.generate(story(number)))[-1], Done)
        assert calls.counts["llama_state_seq_set_data"] == 1
        # A reload (a new context size), then embeddings on yet another engine.
        await reload(agent, context_size=2048)
        assert isinstance((await session.generate(raw_prompt("Hi", 4)))[-1], Done)
        await reload(agent, enable_embeddings=True)
        embedded = await session.embed([("a", "one"), ("b", "two")], NoNormalization())
        assert isinstance(embedded[-1], EmbeddingDone)
    # Loads, warm-ups, decodes, saves, restores and frees of all three engines: one thread, the
    # engine's.
    assert calls.threads.keys() == set(COMPUTING) - {"llama_encode"}
    assert set().union(*calls.threads.values()) == {THREAD_NAME}, calls.threads


@pytest.mark.parametrize(("mode", "expected"), [("off", False), ("on", True)])
async def test_the_extra_buffers_flag_reaches_llama_cpp(
    mode: ExtraBuffersMode, expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = LlamaCalls(allow_extra_bufts=probe_verdict_sync(str(default_model_path())).enabled)
    calls.watch(monkeypatch)
    async with in_process_agent(extra_buffers=mode) as agent:
        await agent.session.apply()
        host = await reported_host(agent.record)
    assert calls.extra_bufts == [expected]
    reason = f"{mode} (--extra-buffers {mode})"
    assert host.extra_buffers == ExtraBuffers(enabled=expected, reason=reason)


async def test_a_probe_killed_by_a_signal_loads_without_extra_buffers_and_says_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A cache of its own: the session's holds the real probe's verdict for this host.
    monkeypatch.setenv("PADDLER_TUI_CACHE_DIR", str(tmp_path))
    crash = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]
    monkeypatch.setattr(extra_buffers, "probe_command", lambda *_: crash)
    calls = LlamaCalls()
    calls.watch(monkeypatch)
    async with in_process_agent(extra_buffers="auto") as agent:
        await agent.session.apply()
        host = await reported_host(agent.record)
        # And the agent serves without them.
        assert isinstance((await agent.session.generate(raw_prompt("Hi", 4)))[-1], Done)
    assert calls.extra_bufts == [False]
    assert host.extra_buffers is not None
    assert not host.extra_buffers.enabled
    assert "killed by SIGSEGV" in host.extra_buffers.reason


@pytest.mark.parametrize("change", ["context size", "model"])
async def test_a_reload_never_restores_a_state_saved_by_the_engine_before(
    change: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = LlamaCalls()
    calls.watch(monkeypatch)
    link = tmp_path / "the-same-weights-elsewhere.gguf"
    link.symlink_to(default_model_path())
    reloaded: dict[str, Any] = (
        {"context_size": 1024}
        if change == "context size"
        else {"model": LocalToAgent(value=str(link))}
    )
    async with in_process_agent(slots=1) as agent:
        session = agent.session
        await session.apply()
        await session.generate(story(1))
        await session.generate(story(2))  # takes the only slot: story 1 is saved
        back = usage(await session.generate(story(1)))  # restored; story 2 is saved
        assert back.cached_prompt_tokens == back.prompt_tokens - 1
        assert calls.counts["llama_state_seq_set_data"] == 1
        await reload(agent, **reloaded)
        again = usage(await session.generate(story(2)))
    # The new engine's cache started empty: story 2 was decoded whole, nothing restored.
    assert again.cached_prompt_tokens == 0
    assert calls.counts["llama_state_seq_set_data"] == 1
