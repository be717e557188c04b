"""The embeddings screen at 80x24 and 120x40: results, a 501, an unreachable balancer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from textual.pilot import Pilot

from paddler_tui.client.balancer_services import BalancerServices
from paddler_tui.ui.screens.embeddings import EmbeddingsScreen
from paddler_tui.ui.widgets.embedding_documents import EmbeddingDocuments
from snapshots.screen_snapshots import SIZES, SnapCompare, host, settle
from tests.support.clocks import StepClock
from tests.support.fake_balancer import FakeBalancer, FakeScript, desired_state
from tests.support.pilot import wait_until

DOCUMENTS = "\n".join(
    [
        "the cat sat on the mat",
        "a dog ran in the park",
        "the cat sat on the mat",
        "stock prices fell",
        "bananas are yellow",
    ]
)


@pytest.fixture
def fake() -> Iterator[FakeBalancer]:
    with FakeBalancer(FakeScript(desired_state=desired_state(enable_embeddings=True))) as running:
        yield running


def embeddings_screen(services: BalancerServices) -> EmbeddingsScreen:
    return EmbeddingsScreen(services, clock=StepClock())


async def run_batch(pilot: Pilot[None]) -> None:
    screen = pilot.app.screen
    assert isinstance(screen, EmbeddingsScreen)
    screen.query_one(EmbeddingDocuments).set_documents(DOCUMENTS)
    await pilot.press("ctrl+r")
    await wait_until(
        pilot, lambda: screen.current_run is not None and not screen.current_run.running
    )
    await settle(pilot)


@pytest.mark.parametrize("size", SIZES)
def test_results(snap_compare: SnapCompare, fake: FakeBalancer, size: tuple[int, int]) -> None:
    app = host(embeddings_screen, fake)
    assert snap_compare(app, terminal_size=size, run_before=run_batch)


@pytest.mark.parametrize("size", SIZES)
def test_embeddings_disabled_501(
    snap_compare: SnapCompare, fake: FakeBalancer, size: tuple[int, int]
) -> None:
    fake.script.desired_state = desired_state(enable_embeddings=False)
    app = host(embeddings_screen, fake)
    assert snap_compare(app, terminal_size=size, run_before=run_batch)


@pytest.mark.parametrize("size", SIZES)
def test_balancer_unreachable(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    app = host(embeddings_screen)
    assert snap_compare(app, terminal_size=size, run_before=run_batch)
