"""The embedding batch tester: documents in, vectors, similarities and timing out.

Batches go over the inference socket (a paddler-tui extension) and fall back to Paddler's
``/api/v1/generate_embedding_batch`` when the balancer ignores that request; see
:mod:`paddler_tui.client.embeddings.batch`.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Button, Footer

from paddler_tui.client.async_iteration import closing
from paddler_tui.client.balancer_services import BalancerServices
from paddler_tui.client.embeddings.batch import (
    FIRST_REPLY_TIMEOUT_S,
    Rejected,
    TransportChosen,
    run_embedding_batch,
)
from paddler_tui.client.embeddings.request import EmbeddingInputError, batch_params
from paddler_tui.client.embeddings.results import EmbeddingRun
from paddler_tui.client.errors import ClientError
from paddler_tui.protocol.requests import GenerateEmbeddingBatchParams
from paddler_tui.ui.screens.embedding_file import EmbeddingFileScreen
from paddler_tui.ui.widgets.embedding_documents import EmbeddingDocuments
from paddler_tui.ui.widgets.embedding_heat_map import EmbeddingHeatMap
from paddler_tui.ui.widgets.embedding_notice import EmbeddingNotice
from paddler_tui.ui.widgets.embedding_options import EmbeddingOptions
from paddler_tui.ui.widgets.embedding_results_table import EmbeddingResultsTable
from paddler_tui.ui.widgets.embedding_status import EmbeddingStatus

MAX_FILE_BYTES = 5 * 1024 * 1024
STATUS_TICK_S = 0.2
HEAT_MAP_REFRESH_S = 0.25
PROBLEMS_SHOWN = 4

EMBEDDINGS_DISABLED_HELP = (
    "501: embeddings are disabled on this cluster. Turn on enable_embeddings in the inference "
    "parameters on the cluster screen (ctrl+l takes you there); token generation pauses while "
    "it is on."
)


class EmbeddingsScreen(Screen[None]):
    """Embed a batch of documents and compare the vectors.

    | Key | Action | Binding id |
    | --- | --- | --- |
    | ctrl+r | embed the documents | ``embeddings.run`` |
    | escape | stop a running batch | ``embeddings.stop`` |
    | ctrl+o | load documents from a file | ``embeddings.load`` |
    | ctrl+s | export the results as JSON | ``embeddings.export`` |
    | ctrl+l | after a 501: enable embeddings on the cluster screen | ``embeddings.enable`` |
    """

    DEFAULT_CSS: ClassVar[str] = """
    EmbeddingsScreen {
        layout: vertical;
        #documents { height: 1fr; min-height: 5; max-height: 14; }
        #results { height: 1fr; min-height: 8; }
        #table { width: 1fr; }
        #heat-map-scroll { width: auto; max-width: 60%; height: 1fr; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "run", "Run", id="embeddings.run"),
        Binding("escape", "stop", "Stop", id="embeddings.stop"),
        Binding("ctrl+o", "load", "Load file", id="embeddings.load"),
        Binding("ctrl+s", "export", "Export JSON", id="embeddings.export"),
        Binding("ctrl+l", "enable_embeddings", "Enable embeddings", id="embeddings.enable"),
    ]

    class EnableEmbeddingsRequested(Message):
        """The user asked to turn embeddings on: the app opens the cluster screen for it
        (:meth:`ClusterScreen.action_enable_embeddings`)."""

    def __init__(
        self,
        services: BalancerServices,
        *,
        clock: Callable[[], float] = time.monotonic,
        export_dir: Path | None = None,
        first_reply_timeout_s: float = FIRST_REPLY_TIMEOUT_S,
    ) -> None:
        super().__init__()
        self.services = services
        self._clock = clock
        self._export_dir = export_dir
        self._first_reply_timeout_s = first_reply_timeout_s
        # Cleared for good once the balancer has ignored a socket request (it is Paddler).
        self._use_socket = True
        self.current_run: EmbeddingRun | None = None
        self._offer_enable = False
        self._ticker: Timer | None = None
        self._heat_map_at = 0.0

    def compose(self) -> ComposeResult:
        yield EmbeddingDocuments(id="documents")
        yield EmbeddingOptions()
        yield EmbeddingStatus(id="status")
        yield EmbeddingNotice(id="notice")
        with Horizontal(id="results"):
            yield EmbeddingResultsTable(id="table")
            with VerticalScroll(id="heat-map-scroll"):
                yield EmbeddingHeatMap(id="heat-map")
        yield Footer()

    @property
    def running(self) -> bool:
        return self.current_run is not None and self.current_run.running

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return self.running
        if action == "enable_embeddings":
            return self._offer_enable
        if action == "export":
            return True if self.current_run is not None and self.current_run.rows else None
        return True

    # Actions.

    def action_run(self) -> None:
        """Embed the documents as they are now (a running batch is stopped first)."""
        try:
            method = self.query_one(EmbeddingOptions).method()
            params = batch_params(self.query_one(EmbeddingDocuments).documents(), method)
        except EmbeddingInputError as error:
            self.notify(str(error), severity="warning")
            return
        self._run_batch(params)

    def action_stop(self) -> None:
        self.workers.cancel_group(self, "embeddings")

    def action_load(self) -> None:
        self.app.push_screen(EmbeddingFileScreen(Path.cwd()), self._load_file)

    def action_export(self) -> None:
        if self.current_run is None or not self.current_run.rows:
            self.notify("Nothing to export yet: run a batch first", severity="warning")
            return
        self._export(self.current_run)

    def action_enable_embeddings(self) -> None:
        self.post_message(self.EnableEmbeddingsRequested())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "enable-embeddings":
            event.stop()
            self.action_enable_embeddings()

    # The run.

    @work(exclusive=True, group="embeddings")
    async def _run_batch(self, params: GenerateEmbeddingBatchParams) -> None:
        run = self.current_run = EmbeddingRun(params, started_at=self._clock())
        self._offer_enable = False
        self.query_one(EmbeddingResultsTable).reset()
        self.query_one(EmbeddingHeatMap).show([], [])
        self.query_one(EmbeddingNotice).clear()
        self._ticker = self.set_interval(STATUS_TICK_S, self._show_status)
        self.refresh_bindings()
        failure: str | None = None
        try:
            events = run_embedding_batch(
                self.services,
                params,
                use_socket=self._use_socket,
                first_reply_timeout_s=self._first_reply_timeout_s,
            )
            async with closing(events):
                async for event in events:
                    if isinstance(event, TransportChosen) and event.reason:
                        self._use_socket = False
                    row = run.apply(event)
                    if row is not None:
                        self.query_one(EmbeddingResultsTable).add_result(row)
                        self._show_heat_map(throttled=True)
        except ClientError as error:
            failure = f"Cannot reach the balancer at {self.services.inference_addr}: {error}"
        except asyncio.CancelledError:
            run.stopped = True
            raise
        finally:
            run.finish(self._clock())
            self._ticker.stop()
            self._show_status()
            self._show_heat_map(throttled=False)
            self._show_outcome(run, failure)
            self.refresh_bindings()

    def _show_status(self) -> None:
        if self.current_run is not None:
            self.query_one(EmbeddingStatus).show_run(self.current_run, self._clock())

    def _show_heat_map(self, *, throttled: bool) -> None:
        now = self._clock()
        if self.current_run is None or (throttled and now - self._heat_map_at < HEAT_MAP_REFRESH_S):
            return
        self._heat_map_at = now
        self.query_one(EmbeddingHeatMap).show(*self.current_run.similarity())

    def _show_outcome(self, run: EmbeddingRun, failure: str | None) -> None:
        notice = self.query_one(EmbeddingNotice)
        rejected: Rejected | None = run.rejected
        if failure is not None:
            notice.say(failure, error=True)
        elif rejected is not None and rejected.status == 501:
            self._offer_enable = True
            notice.say(EMBEDDINGS_DISABLED_HELP, error=True, offer_enable=True)
        elif rejected is not None:
            notice.say(f"{rejected.status}: {rejected.text}", error=True)
        elif run.problems:
            shown = run.problems[:PROBLEMS_SHOWN]
            more = len(run.problems) - len(shown)
            notice.say("\n".join(shown) + (f"\n… and {more} more" if more else ""))
        elif run.transport_note:
            notice.say(f"Served over HTTP: {run.transport_note}.")

    # Files.

    def _load_file(self, path: Path | None) -> None:
        if path is not None:
            self._read_documents(path)

    @work(exclusive=True, group="embeddings-file")
    async def _read_documents(self, path: Path) -> None:
        try:
            text = await asyncio.to_thread(_read_text, path)
        except (OSError, ValueError) as error:
            self.notify(f"Cannot load {path}: {error}", severity="error")
            return
        documents = self.query_one(EmbeddingDocuments)
        documents.set_documents(text)
        self.notify(f"Loaded {documents.count} documents from {path.name}")

    @work(group="embeddings-export")
    async def _export(self, run: EmbeddingRun) -> None:
        directory = self._export_dir or Path.cwd()
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = directory / f"embeddings-{stamp}.json"
        text = json.dumps(run.export(), indent=2)
        try:
            await asyncio.to_thread(path.write_text, text, encoding="utf-8")
        except OSError as error:
            self.notify(f"Cannot write {path}: {error}", severity="error")
            return
        self.notify(f"Exported {len(run.rows)} embeddings to {path}")


def _read_text(path: Path) -> str:
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    return path.read_text(encoding="utf-8")
