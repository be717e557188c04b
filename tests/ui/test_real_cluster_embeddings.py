"""Acceptance: an embedding batch of 5 documents on a real cluster with enable_embeddings."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from paddler_tui.ui.screens.embeddings import EmbeddingsScreen
from paddler_tui.ui.widgets.embedding_documents import EmbeddingDocuments
from paddler_tui.ui.widgets.embedding_heat_map import EmbeddingHeatMap
from paddler_tui.ui.widgets.embedding_results_table import EmbeddingResultsTable
from tests.support.cluster import Cluster, greedy_state
from tests.support.pilot import wait_until
from tests.ui.screen_host import ScreenHost, screen_text

pytestmark = pytest.mark.slow

DOCUMENTS = [
    "The cat sat on the mat.",
    "A dog chased the ball in the park.",
    "Stock markets fell sharply on Monday.",
    "Bananas are rich in potassium.",
    "The kitten slept on the rug.",
]


@pytest.fixture(scope="module")
def cluster(make_module_cluster: Callable[[str], Cluster]) -> Cluster:
    return make_module_cluster("embeddings").start(
        agents=1, slots=2, names=("alpha",), state=greedy_state(enable_embeddings=True)
    )


async def test_five_documents_give_five_rows_and_a_unit_diagonal(cluster: Cluster) -> None:
    app = ScreenHost(
        EmbeddingsScreen,
        inference_addr=cluster.b.inference_addr,
        management_addr=cluster.b.management_addr,
    )
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, EmbeddingsScreen)
        screen.query_one(EmbeddingDocuments).set_documents("\n".join(DOCUMENTS))
        await pilot.press("ctrl+r")
        await wait_until(
            pilot,
            lambda: screen.current_run is not None and not screen.current_run.running,
            timeout=60,
        )
        await pilot.pause()
        assert screen.current_run is not None
        assert screen.current_run.problems == []
        assert screen.current_run.rejected is None
        assert screen.query_one(EmbeddingResultsTable).row_count == 5
        heat_map = screen.query_one(EmbeddingHeatMap)
        assert len(heat_map.matrix) == 5
        assert all(len(row) == 5 for row in heat_map.matrix)
        assert [f"{heat_map.matrix[i][i]:.2f}" for i in range(5)] == ["1.00"] * 5
        text = screen_text(app)
        assert "5/5 embedded" in text
        assert "via inference socket" in text
        assert text.count("1.00") >= 5
