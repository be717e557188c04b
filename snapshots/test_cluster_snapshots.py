"""The cluster screen at 80x24 and 120x40: the form, the template, metadata, errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from textual.pilot import Pilot
from textual.widgets import TabbedContent, TextArea

from paddler_tui.client.balancer_services import BalancerServices
from paddler_tui.protocol.agent_socket import ExtraBuffers
from paddler_tui.protocol.model_source import HuggingFace
from paddler_tui.protocol.monitor import MonitorLocalAgent
from paddler_tui.ui.screens.cluster import ClusterScreen
from paddler_tui.ui.widgets.cluster_metadata import ClusterMetadata
from paddler_tui.ui.widgets.cluster_parameters_form import ClusterParametersForm
from paddler_tui.ui.widgets.cluster_status import ClusterStatus
from snapshots.screen_snapshots import SIZES, SnapCompare, host, settle
from tests.support.fake_balancer import FakeBalancer, FakeScript, agent_snapshot, desired_state
from tests.support.monitor_script import PROBE_CRASHED
from tests.support.pilot import wait_until

TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
METADATA = {
    "general.architecture": "llama",
    "general.name": "SmolLM2 135M Instruct",
    "llama.block_count": "30",
    "llama.context_length": "8192",
    "llama.embedding_length": "576",
    "tokenizer.chat_template": TEMPLATE,
    "tokenizer.ggml.model": "gpt2",
}
MODEL = HuggingFace(
    filename="SmolLM2-135M-Instruct-Q8_0.gguf",
    repo_id="bartowski/SmolLM2-135M-Instruct-GGUF",
    revision="main",
)


@pytest.fixture
def fake() -> Iterator[FakeBalancer]:
    script = FakeScript(
        agents=[
            agent_snapshot("a1", "alpha", slots_processing=1),
            agent_snapshot(
                "a2",
                "beta",
                model_path=None,
                slots_total=0,
                state_application_status="AttemptedAndRetrying",
                download_current=40 * 2**20,
                download_total=140 * 2**20,
                download_filename="SmolLM2-135M-Instruct-Q8_0.gguf",
            ),
        ],
        desired_state=desired_state(MODEL, temperature=0.6, context_size=4096),
        metadata={"a1": METADATA},
        # alpha's extra-buffers probe crashed; beta, still downloading, has no verdict yet.
        live_monitor=True,
        extra_buffers={"a1": ExtraBuffers(enabled=False, reason=PROBE_CRASHED)},
        # Both are serve's local agents; alpha was restarted once after a crash.
        local_agents=[
            MonitorLocalAgent(name="alpha", pid=4101, restarts=1, last_exit="killed by SIGSEGV"),
            MonitorLocalAgent(name="beta", pid=4102),
        ],
    )
    with FakeBalancer(script) as running:
        yield running


def cluster_screen(services: BalancerServices) -> ClusterScreen:
    return ClusterScreen(services, clock=lambda: 0.0)


def screen(pilot: Pilot[None]) -> ClusterScreen:
    assert isinstance(pilot.app.screen, ClusterScreen)
    return pilot.app.screen


async def loaded(pilot: Pilot[None]) -> None:
    await wait_until(pilot, lambda: screen(pilot).loaded is not None)
    await wait_until(pilot, lambda: bool(screen(pilot).extras.local_agents))
    template = screen(pilot).query_one("#model-template", TextArea)
    await wait_until(pilot, lambda: template.text == TEMPLATE)
    await settle(pilot)


async def template_tab(pilot: Pilot[None]) -> None:
    await loaded(pilot)
    screen(pilot).query_one(TabbedContent).active = "tab-template"
    await settle(pilot)


async def metadata_tab(pilot: Pilot[None]) -> None:
    await loaded(pilot)
    screen(pilot).query_one(TabbedContent).active = "tab-metadata"
    metadata = screen(pilot).query_one(ClusterMetadata)
    await wait_until(pilot, lambda: metadata.agent_id == "a1")
    await pilot.pause(0.2)
    await settle(pilot)


async def invalid_fields(pilot: Pilot[None]) -> None:
    await loaded(pilot)
    form = screen(pilot).query_one(ClusterParametersForm)
    form.set_value("n_batch", "lots")
    form.set_value("context_size", "-1")
    await pilot.press("ctrl+s")
    await wait_until(pilot, lambda: screen(pilot).query_one(ClusterStatus).has_class("-error"))
    await settle(pilot)


async def unreachable(pilot: Pilot[None]) -> None:
    status = screen(pilot).query_one(ClusterStatus)
    await wait_until(pilot, lambda: status.has_class("-error"))
    await settle(pilot)


@pytest.mark.parametrize("size", SIZES)
def test_form(snap_compare: SnapCompare, fake: FakeBalancer, size: tuple[int, int]) -> None:
    assert snap_compare(host(cluster_screen, fake), terminal_size=size, run_before=loaded)


@pytest.mark.parametrize("size", SIZES)
def test_chat_template(
    snap_compare: SnapCompare, fake: FakeBalancer, size: tuple[int, int]
) -> None:
    app = host(cluster_screen, fake)
    assert snap_compare(app, terminal_size=size, run_before=template_tab)


@pytest.mark.parametrize("size", SIZES)
def test_metadata(snap_compare: SnapCompare, fake: FakeBalancer, size: tuple[int, int]) -> None:
    app = host(cluster_screen, fake)
    assert snap_compare(app, terminal_size=size, run_before=metadata_tab)


@pytest.mark.parametrize("size", SIZES)
def test_invalid_fields(
    snap_compare: SnapCompare, fake: FakeBalancer, size: tuple[int, int]
) -> None:
    app = host(cluster_screen, fake)
    assert snap_compare(app, terminal_size=size, run_before=invalid_fields)


@pytest.mark.parametrize("size", SIZES)
def test_balancer_unreachable(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    app = host(cluster_screen)
    assert snap_compare(app, terminal_size=size, run_before=unreachable)
