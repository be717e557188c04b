"""Building and driving the whole app in Pilot tests: options in a temp dir, waiting helpers."""

from __future__ import annotations

from pathlib import Path

from textual.pilot import Pilot

from paddler_tui.client.chat.conversation_store import DATABASE_FILENAME, StoredMessage
from paddler_tui.ui.app import PaddlerTuiApp, TuiOptions
from paddler_tui.ui.config import TuiConfig
from paddler_tui.ui.screens.chat import ChatScreen
from paddler_tui.ui.widgets.chat_prompt import ChatPrompt
from tests.support.pilot import wait_until

QUIET = TuiConfig(cursor_blink=False)


def tui_options(
    inference_addr: str,
    management_addr: str,
    data_dir: Path,
    *,
    config: TuiConfig = QUIET,
    start_embedded: bool = False,
    config_path: Path | None = None,
) -> TuiOptions:
    return TuiOptions(
        inference_addr=inference_addr,
        management_addr=management_addr,
        start_embedded=start_embedded,
        database_path=data_dir / DATABASE_FILENAME,
        config_path=config_path,
        config=config,
    )


async def chat_screen(pilot: Pilot[None], timeout: float = 10.0) -> ChatScreen:
    app = pilot.app
    assert isinstance(app, PaddlerTuiApp)
    await wait_until(
        pilot,
        lambda: isinstance(app.screen, ChatScreen) and isinstance(app.focused, ChatPrompt),
        timeout=timeout,
        what="the chat screen",
    )
    screen = app.screen
    assert isinstance(screen, ChatScreen)
    return screen


async def send(pilot: Pilot[None], screen: ChatScreen, text: str) -> None:
    """Type ``text`` into the prompt, press Enter, wait until it is sent."""
    count = len(screen.messages)
    screen.query_one(ChatPrompt).text = text
    await pilot.press("enter")
    await wait_until(pilot, lambda: len(screen.messages) > count, what="the message to be sent")


async def answer(
    pilot: Pilot[None], screen: ChatScreen, text: str, *, timeout: float = 10.0
) -> StoredMessage:
    """Send ``text`` and wait for the stored answer."""
    count = len(screen.messages)
    await send(pilot, screen, text)
    await wait_until(
        pilot,
        lambda: not screen.generating and len(screen.messages) == count + 2,
        timeout=timeout,
        what="the answer to end",
    )
    await pilot.pause()
    return screen.messages[-1]
