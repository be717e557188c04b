"""The embeddings screen driven by Pilot against the fake balancer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypedDict, Unpack

from rich.text import Text
from textual.message import Message
from textual.widgets import Input

from paddler_tui.ui.screens.embeddings import EmbeddingsScreen
from paddler_tui.ui.widgets.embedding_documents import EmbeddingDocuments
from paddler_tui.ui.widgets.embedding_heat_map import EmbeddingHeatMap
from paddler_tui.ui.widgets.embedding_notice import EmbeddingNotice
from paddler_tui.ui.widgets.embedding_results_table import EmbeddingResultsTable
from tests.support.fake_balancer import FakeBalancer, desired_state
from tests.support.pilot import wait_until
from tests.ui.screen_host import ScreenHost, screen_text

DOCUMENTS = "the cat sat\na dog ran\nthe cat sat\nstock prices fell\nbananas are yellow"


class ScreenOptions(TypedDict, total=False):
    export_dir: Path
    first_reply_timeout_s: float


def host(fake: FakeBalancer, **options: Unpack[ScreenOptions]) -> ScreenHost:
    return ScreenHost(
        lambda services: EmbeddingsScreen(services, **options),
        inference_addr=fake.inference_addr,
        management_addr=fake.management_addr,
    )


def screen(app: ScreenHost) -> EmbeddingsScreen:
    assert isinstance(app.screen, EmbeddingsScreen)
    return app.screen


def finished(app: ScreenHost) -> bool:
    run = screen(app).current_run
    return run is not None and not run.running


async def test_five_documents_give_five_rows_and_a_unit_diagonal(fake: FakeBalancer) -> None:
    app = host(fake)
    async with app.run_test() as pilot:
        screen(app).query_one(EmbeddingDocuments).set_documents(DOCUMENTS)
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: finished(app))
        await pilot.pause()
        assert screen(app).query_one(EmbeddingResultsTable).row_count == 5
        heat_map = screen(app).query_one(EmbeddingHeatMap)
        assert heat_map.labels == ["1", "2", "3", "4", "5"]
        assert all(f"{heat_map.matrix[i][i]:.2f}" == "1.00" for i in range(5))
        assert "5/5 embedded" in screen_text(app)
        assert "via inference socket" in screen_text(app)


async def test_paddler_is_served_over_http(fake: FakeBalancer) -> None:
    fake.script.socket_embeddings = False
    app = host(fake, first_reply_timeout_s=0.2)
    async with app.run_test() as pilot:
        screen(app).query_one(EmbeddingDocuments).set_documents(DOCUMENTS)
        for _ in range(2):
            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda: finished(app))
            await pilot.pause()
            assert screen(app).query_one(EmbeddingResultsTable).row_count == 5
            assert "via HTTP" in screen_text(app)
    # Once the socket was ignored, the next run goes straight to HTTP.
    assert [transport for transport, _ in fake.embedding_requests] == ["socket", "http", "http"]


async def test_501_explains_and_offers_the_cluster_screen(fake: FakeBalancer) -> None:
    fake.script.desired_state = desired_state(enable_embeddings=False)
    seen: list[Message] = []
    app = host(fake)
    async with app.run_test(message_hook=seen.append) as pilot:
        await pilot.press("ctrl+l")  # nothing to enable yet: hidden and inert
        screen(app).query_one(EmbeddingDocuments).set_documents(DOCUMENTS)
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: finished(app))
        await pilot.pause()
        notice = screen(app).query_one(EmbeddingNotice)
        assert notice.has_class("-shown", "-error", "-offer")
        assert "enable_embeddings" in screen_text(app)
        await pilot.press("ctrl+l")
        await pilot.click("#enable-embeddings")
        await pilot.pause()
    # The hook sees a message once at the screen and once more where it bubbles to: the app.
    requested = {id(m) for m in seen if isinstance(m, EmbeddingsScreen.EnableEmbeddingsRequested)}
    assert len(requested) == 2


async def test_export_writes_json(fake: FakeBalancer, tmp_path: Path) -> None:
    app = host(fake, export_dir=tmp_path)
    async with app.run_test() as pilot:
        await pilot.press("ctrl+s")  # nothing yet
        screen(app).query_one(EmbeddingDocuments).set_documents("one\ntwo")
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: finished(app))
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: any(tmp_path.iterdir()))
    [exported] = list(tmp_path.iterdir())
    data = json.loads(exported.read_text())
    assert [document["content"] for document in data["documents"]] == ["one", "two"]


async def test_bad_input_is_explained_not_sent(fake: FakeBalancer) -> None:
    app = host(fake)
    async with app.run_test(notifications=True) as pilot:
        await pilot.press("ctrl+r")  # no documents
        screen(app).query_one(EmbeddingDocuments).set_documents("x")
        await pilot.click("#normalization")
        await pilot.press("down", "down", "enter")
        await pilot.pause()
        epsilon = screen(app).query_one("#epsilon", Input)
        assert not epsilon.disabled
        epsilon.value = "-1"
        await pilot.press("ctrl+r")
        await pilot.pause()
        messages = [str(n.message) for n in app._notifications]
    assert fake.embedding_requests == []
    assert any("at least one document" in m for m in messages)
    assert any("epsilon" in m for m in messages)


async def test_loading_documents_from_a_file(fake: FakeBalancer, tmp_path: Path) -> None:
    documents = tmp_path / "docs.txt"
    documents.write_text("alpha\n\nbeta\ngamma\n")
    app = host(fake)
    async with app.run_test() as pilot:
        await pilot.press("ctrl+o")
        await pilot.pause()
        path_input = app.screen.query_one("#path", Input)
        path_input.value = str(documents)
        path_input.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen(app).query_one(EmbeddingDocuments).count == 3)


async def test_an_unreachable_balancer_is_said_plainly() -> None:
    app = ScreenHost(EmbeddingsScreen, inference_addr="127.0.0.1:9", management_addr="127.0.0.1:9")
    async with app.run_test() as pilot:
        screen(app).query_one(EmbeddingDocuments).set_documents("x")
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: finished(app))
        await pilot.pause()
        assert "Cannot reach the balancer at 127.0.0.1:9" in screen_text(app)
        assert isinstance(Text(screen_text(app)), Text)


async def test_escape_stops_a_running_batch(fake: FakeBalancer) -> None:
    fake.script.item_delay_s = 0.3
    app = host(fake)
    async with app.run_test() as pilot:
        screen(app).query_one(EmbeddingDocuments).set_documents(DOCUMENTS)
        await pilot.press("ctrl+r")
        table = screen(app).query_one(EmbeddingResultsTable)
        await wait_until(pilot, lambda: table.row_count == 1)
        await pilot.press("escape")
        await wait_until(pilot, lambda: finished(app))
        await wait_until(pilot, lambda: len(fake.stopped_requests) == 1)
        assert table.row_count < 5
        assert "stopped: 1/5 embedded" in screen_text(app)
