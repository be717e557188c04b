"""Screenshots of the chat (and its connection and help screens) against the fake balancer.

Everything shown is fixed: the fake's ports, its scripted answers, the clock behind tokens/s,
the stored conversations and the cursor (no blinking).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from paddler_tui.client.chat.conversation_store import (
    DATABASE_FILENAME,
    ConversationSettings,
    ConversationStore,
    NewMessage,
)
from paddler_tui.protocol.envelope import ErrorDetails
from paddler_tui.protocol.generated_token import ContentToken, Done, ReasoningToken
from paddler_tui.protocol.requests import ContinueFromConversationHistoryParams
from paddler_tui.protocol.usage import TokenUsage
from paddler_tui.ui.app import PaddlerTuiApp
from paddler_tui.ui.screens.connection import ConnectionScreen
from paddler_tui.ui.screens.help import HelpScreen
from snapshots.screen_snapshots import SnapCompare
from tests.support.clocks import ScriptedClock
from tests.support.fake_balancer import ChatItem, FakeBalancer, FakeScript
from tests.support.pilot import wait_until
from tests.ui.chat_app import answer, chat_screen, tui_options

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
# Below the ephemeral range (32768+), so no test that binds port 0 can be holding them.
INFERENCE_PORT, MANAGEMENT_PORT = 28161, 28160

ANSWER: list[ChatItem] = [
    ReasoningToken(value="A classic first program; keep it short."),
    ContentToken(value="Here is the smallest Python program that greets:\n\n"),
    ContentToken(value='```python\nprint("Hello, world!")\n```\n\n'),
    ContentToken(value="Run it with `python hello.py`."),
    Done(
        usage=TokenUsage.zero().model_copy(
            update={
                "prompt_tokens": 31,
                "cached_prompt_tokens": 12,
                "content_tokens": 27,
                "reasoning_tokens": 9,
            }
        )
    ),
]


def scripted(items: Sequence[ChatItem]) -> Callable[[ContinueFromConversationHistoryParams], Any]:
    return lambda _: items


async def seed(database: Path) -> None:
    """Two older conversations for the sidebar."""
    ticks = iter(range(1, 100))
    store = await ConversationStore.open(database, now=lambda: float(next(ticks)))
    settings = ConversationSettings("", 1024, False)
    for title, question, reply in (
        ("Boiling eggs", "How long to boil an egg?", "About nine minutes for hard-boiled."),
        ("Rust lifetimes", "What is a lifetime?", "How long a reference stays valid."),
    ):
        conversation = await store.create(title, settings)
        await store.add_message(conversation.id, NewMessage("user", question))
        await store.add_message(
            conversation.id, NewMessage("assistant", reply, generated_by="alpha")
        )
    await store.close()


@pytest.fixture
def fake() -> Iterator[FakeBalancer]:
    with FakeBalancer(
        FakeScript(), inference_port=INFERENCE_PORT, management_port=MANAGEMENT_PORT
    ) as running:
        yield running


def make_app(fake: FakeBalancer, tmp_path: Path) -> PaddlerTuiApp:
    asyncio.run(seed(tmp_path / DATABASE_FILENAME))
    options = tui_options(fake.inference_addr, fake.management_addr, tmp_path)
    return PaddlerTuiApp(options, clock=ScriptedClock())


async def ask(pilot: Pilot[None], question: str) -> None:
    screen = await chat_screen(pilot)
    await pilot.press("ctrl+n")
    await answer(pilot, screen, question)
    app = pilot.app
    assert isinstance(app, PaddlerTuiApp)
    await wait_until(pilot, lambda: app.connection.status == "connected")
    await pilot.pause(0.2)


@pytest.mark.parametrize("size", SIZES)
def test_chat_answer(
    snap_compare: SnapCompare, fake: FakeBalancer, tmp_path: Path, size: tuple[int, int]
) -> None:
    fake.script.conversation = scripted(ANSWER)

    async def run_before(pilot: Pilot[None]) -> None:
        await ask(pilot, "Show me hello world in Python")

    assert snap_compare(make_app(fake, tmp_path), run_before=run_before, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_chat_error(
    snap_compare: SnapCompare, fake: FakeBalancer, tmp_path: Path, size: tuple[int, int]
) -> None:
    fake.script.conversation = scripted(
        [ErrorDetails(code=503, description="Buffered requests overflow")]
    )

    async def run_before(pilot: Pilot[None]) -> None:
        await ask(pilot, "Are you there?")

    assert snap_compare(make_app(fake, tmp_path), run_before=run_before, terminal_size=size)


def test_chat_help(snap_compare: SnapCompare, fake: FakeBalancer, tmp_path: Path) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await chat_screen(pilot)
        app = pilot.app
        assert isinstance(app, PaddlerTuiApp)
        await wait_until(pilot, lambda: app.connection.status == "connected")
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, HelpScreen))

    assert snap_compare(make_app(fake, tmp_path), run_before=run_before, terminal_size=(80, 24))


def test_chat_connection_unreachable(snap_compare: SnapCompare, tmp_path: Path) -> None:
    # Bound, never started: every connection is refused.
    fake = FakeBalancer(inference_port=INFERENCE_PORT, management_port=MANAGEMENT_PORT)
    try:
        app = make_app(fake, tmp_path)

        async def run_before(pilot: Pilot[None]) -> None:
            await wait_until(
                pilot,
                lambda: (
                    isinstance(pilot.app.screen, ConnectionScreen)
                    and pilot.app.screen.has_class("-failed")
                ),
            )

        assert snap_compare(app, run_before=run_before, terminal_size=(80, 24))
    finally:
        fake.close()
