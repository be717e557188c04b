"""The chat against a real local cluster: a balancer and an agent serving SmolLM2."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest
from textual.widgets import OptionList

from paddler_tui.paths import data_dir
from paddler_tui.ui.app import PaddlerTuiApp
from paddler_tui.ui.config import ChatDefaults, TuiConfig
from paddler_tui.ui.widgets.chat_message import ChatMessage
from paddler_tui.ui.widgets.chat_sidebar import ChatSidebar
from paddler_tui.ui.widgets.chat_status import ChatStatus
from tests.support.cluster import Cluster, greedy_state
from tests.support.pilot import wait_until
from tests.ui.chat_app import answer, chat_screen, send, tui_options

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(make_module_cluster: Callable[[str], Cluster]) -> Cluster:
    return make_module_cluster("cluster").start(agents=1, slots=2, state=greedy_state())


def make_app(cluster: Cluster, directory: Path, max_tokens: int) -> PaddlerTuiApp:
    config = TuiConfig(cursor_blink=False, chat=ChatDefaults(max_tokens=max_tokens))
    return PaddlerTuiApp(
        tui_options(cluster.b.inference_addr, cluster.b.management_addr, directory, config=config)
    )


async def test_a_question_streams_an_answer(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown: list[str] = []
    append = ChatMessage.append_content

    async def recording(widget: ChatMessage, text: str) -> None:
        await append(widget, text)
        shown.append(widget.content)

    monkeypatch.setattr(ChatMessage, "append_content", recording)
    app = make_app(cluster, tmp_path, max_tokens=48)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await chat_screen(pilot)
        stored = await answer(pilot, screen, "Count from one to twenty, in words.", timeout=60)
        assert stored.outcome == "complete"
        assert stored.content.strip()
        # Shown piece by piece as the tokens arrived.
        assert len(set(shown)) > 5
        assert shown[-1] == stored.content
        assert all(later.startswith(earlier) for earlier, later in pairwise(shown))
        assert screen.query(ChatMessage).last().content == stored.content
        assert stored.generated_by == "agent-1"
        assert stored.usage is not None and stored.usage.completion_tokens > 5
        footer = screen.query_one(ChatStatus).last_answer
        assert footer.startswith("agent-1 · ")
        assert f"{stored.usage.prompt_tokens} prompt" in footer
        assert f"{stored.usage.completion_tokens} generated" in footer
        assert "tok/s" in footer


async def test_escape_stops_the_answer_and_frees_the_slot(cluster: Cluster, tmp_path: Path) -> None:
    app = make_app(cluster, tmp_path, max_tokens=1500)
    async with app.run_test() as pilot:
        screen = await chat_screen(pilot)
        await send(pilot, screen, "Write a very long story about a dragon and a lighthouse.")
        widget = screen.query(ChatMessage).last()
        await wait_until(pilot, lambda: len(widget.content) > 20, timeout=60)
        assert await asyncio.to_thread(cluster.slots_processing) == 1
        await pilot.press("escape")
        await wait_until(pilot, lambda: not screen.generating)
        stored = screen.messages[-1]
        assert stored.outcome == "stopped"
        assert stored.usage is None
        for _ in range(50):
            if await asyncio.to_thread(cluster.slots_processing) == 0:
                break
            await asyncio.sleep(0.1)
        assert await asyncio.to_thread(cluster.slots_processing) == 0


async def test_the_conversation_is_there_after_a_restart(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PADDLER_TUI_DATA_DIR", str(tmp_path / "data"))
    app = make_app(cluster, data_dir(), max_tokens=24)
    async with app.run_test() as pilot:
        screen = await chat_screen(pilot)
        first = await answer(pilot, screen, "Name a colour.", timeout=60)

    again = make_app(cluster, data_dir(), max_tokens=24)
    async with again.run_test() as pilot:
        screen = await chat_screen(pilot)
        await wait_until(pilot, lambda: len(screen.messages) == 2)
        assert [m.content for m in screen.messages] == ["Name a colour.", first.content]
        shown = [w.content for w in screen.query(ChatMessage)]
        assert shown == ["Name a colour.", first.content]
        conversations = screen.query_one(ChatSidebar).query_one("#chat-conversations", OptionList)
        assert conversations.option_count == 1
