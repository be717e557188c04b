"""The chat screen in the whole app, against the fake balancer (real protocol, scripted answers)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from textual import events
from textual.widgets import DataTable, Input, OptionList, Switch, TextArea

from paddler_tui.client.chat.conversation_store import ConversationStore
from paddler_tui.protocol.envelope import ErrorDetails
from paddler_tui.protocol.generated_token import (
    ContentToken,
    Done,
    ReasoningToken,
    TokenGenerationDisabled,
)
from paddler_tui.protocol.requests import ContinueFromConversationHistoryParams
from paddler_tui.protocol.usage import TokenUsage
from paddler_tui.ui.app import PaddlerTuiApp
from paddler_tui.ui.config import TuiConfig
from paddler_tui.ui.screens.chat_settings import ChatSettingsScreen
from paddler_tui.ui.screens.confirm import ConfirmScreen
from paddler_tui.ui.screens.embeddings import EmbeddingsScreen
from paddler_tui.ui.screens.help import HelpScreen
from paddler_tui.ui.screens.text_prompt import TextPromptScreen
from paddler_tui.ui.widgets.chat_error import ChatError
from paddler_tui.ui.widgets.chat_message import ChatMessage
from paddler_tui.ui.widgets.chat_prompt import ChatPrompt
from paddler_tui.ui.widgets.chat_status import ChatStatus
from paddler_tui.ui.widgets.connection_bar import ConnectionBar
from tests.support.clocks import ScriptedClock
from tests.support.fake_balancer import ChatItem, ChatScript, FakeBalancer, RawFrame
from tests.support.pilot import wait_until
from tests.ui.chat_app import QUIET, answer, chat_screen, send, tui_options


def usage(prompt: int, content: int, *, reasoning: int = 0) -> TokenUsage:
    return TokenUsage.zero().model_copy(
        update={"prompt_tokens": prompt, "content_tokens": content, "reasoning_tokens": reasoning}
    )


def numbered_answers() -> tuple[list[ContinueFromConversationHistoryParams], ChatScript]:
    """A script answering "answer N" to the Nth request."""
    seen: list[ContinueFromConversationHistoryParams] = []

    def reply(params: ContinueFromConversationHistoryParams) -> Sequence[ChatItem]:
        seen.append(params)
        return [ContentToken(value=f"answer {len(seen)}"), Done(usage=usage(5, 2))]

    return seen, reply


@pytest.fixture
def fake() -> Iterator[FakeBalancer]:
    with FakeBalancer() as running:
        yield running


def make_app(fake: FakeBalancer, tmp_path: Path, config: TuiConfig = QUIET) -> PaddlerTuiApp:
    options = tui_options(fake.inference_addr, fake.management_addr, tmp_path, config=config)
    return PaddlerTuiApp(options, clock=ScriptedClock())


async def test_answer_streams_with_thinking_and_footer(fake: FakeBalancer, tmp_path: Path) -> None:
    fake.script.conversation = lambda _: [
        ReasoningToken(value="The user greets me."),
        ContentToken(value="Hello"),
        ContentToken(value=" there, "),
        ContentToken(value="**friend**."),
        Done(usage=usage(12, 3, reasoning=1)),
    ]
    app = make_app(fake, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await chat_screen(pilot)
        stored = await answer(pilot, screen, "Hi!")
        widget = screen.query(ChatMessage).last()
        assert widget.content == "Hello there, **friend**."
        assert widget.reasoning == "The user greets me."
        assert stored.generated_by == "alpha"
        assert stored.outcome == "complete"
        # 4 generated tokens, 1 s from the first token to Done on the scripted clock.
        assert stored.tokens_per_second == pytest.approx(3 / 0.5)
        footer = screen.query_one(ChatStatus).last_answer
        assert footer == "alpha · 12 prompt · 4 generated · 6.0 tok/s"
        assert widget.summary == footer
    request = fake.conversation_requests[0]
    assert [m.text_content() for m in request.conversation_history] == ["Hi!"]
    assert request.max_tokens == 1024
    assert request.enable_thinking is False


async def test_keys_typed_ahead_of_enter_all_reach_the_message(
    fake: FakeBalancer, tmp_path: Path
) -> None:
    seen, fake.script.conversation = numbered_answers()
    app = make_app(fake, tmp_path)
    text = "what is the capital of France?"
    names = {" ": "space", "?": "question_mark"}
    async with app.run_test() as pilot:
        await chat_screen(pilot)
        # As a fast typist or an unbracketed paste delivers them: all queued before the first
        # is handled, Enter last.
        for character in text:
            app.post_message(events.Key(names.get(character, character), character))
        app.post_message(events.Key("enter", "\r"))
        await wait_until(pilot, lambda: bool(seen), what="the request")
    assert [m.text_content() for m in seen[0].conversation_history] == [text]


async def test_a_remapped_send_key_leaves_enter_to_break_the_line(
    fake: FakeBalancer, tmp_path: Path
) -> None:
    seen, fake.script.conversation = numbered_answers()
    app = make_app(fake, tmp_path, TuiConfig(cursor_blink=False, keymap={"chat.send": "f8"}))
    async with app.run_test() as pilot:
        await chat_screen(pilot)
        await pilot.press("a", "enter", "b", "ctrl+j", "c", "f8")
        await wait_until(pilot, lambda: bool(seen), what="the request")
    assert [m.text_content() for m in seen[0].conversation_history] == ["a\nb\nc"]


async def test_escape_stops_the_answer_midway(fake: FakeBalancer, tmp_path: Path) -> None:
    fake.script.conversation = lambda _: [ContentToken(value=f"word{i} ") for i in range(200)]
    fake.script.item_delay_s = 0.02
    app = make_app(fake, tmp_path)
    async with app.run_test() as pilot:
        screen = await chat_screen(pilot)
        await send(pilot, screen, "Tell me everything")
        widget = screen.query(ChatMessage).last()
        await wait_until(pilot, lambda: "word3" in widget.content, what="a few tokens")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not screen.generating, what="the stop")
        await wait_until(pilot, lambda: bool(fake.stopped_requests), what="StopRespondingTo")
        stored = screen.messages[-1]
        assert stored.outcome == "stopped"
        assert stored.content.startswith("word0 word1 word2 word3")
        assert "word199" not in stored.content
        assert "stopped" in str(widget.query_one(".chat-role").render())


async def test_regenerate_and_edit_the_last_message(fake: FakeBalancer, tmp_path: Path) -> None:
    seen, reply = numbered_answers()
    fake.script.conversation = reply
    app = make_app(fake, tmp_path)
    async with app.run_test() as pilot:
        screen = await chat_screen(pilot)
        await answer(pilot, screen, "first question")
        await answer(pilot, screen, "second question")

        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: len(seen) == 3 and not screen.generating)
        assert [m.content for m in screen.messages] == [
            "first question",
            "answer 1",
            "second question",
            "answer 3",
        ]
        assert len(screen.query(ChatMessage)) == 4

        await pilot.press("ctrl+l")
        prompt = screen.query_one(ChatPrompt)
        assert prompt.text == "second question"
        assert screen.query_one(ChatStatus).state == "editing"
        prompt.text = "second question, reworded"
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(seen) == 4 and not screen.generating)
        assert [m.content for m in screen.messages] == [
            "first question",
            "answer 1",
            "second question, reworded",
            "answer 4",
        ]
    history = [m.text_content() for m in seen[3].conversation_history]
    assert history == ["first question", "answer 1", "second question, reworded"]


async def test_conversation_settings_reach_the_request(fake: FakeBalancer, tmp_path: Path) -> None:
    app = make_app(fake, tmp_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await chat_screen(pilot)
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, ChatSettingsScreen))
        dialog = app.screen
        dialog.query_one("#settings-system-prompt", TextArea).text = "Answer in French."
        dialog.query_one("#settings-max-tokens", Input).value = "0"
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, ChatSettingsScreen), "0 max tokens is refused"
        dialog.query_one("#settings-max-tokens", Input).value = "64"
        dialog.query_one("#settings-thinking", Switch).value = True
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: app.screen is screen)
        assert (
            "max 64 tokens · thinking on · system prompt" in screen.query_one(ChatStatus).settings
        )
        await answer(pilot, screen, "Hello")
        await pilot.press("ctrl+t")
        await answer(pilot, screen, "Again")
        assert screen.conversation is not None
        assert screen.conversation.settings.enable_thinking is False
    first, second = fake.conversation_requests
    assert first.conversation_history[0].role == "system"
    assert first.conversation_history[0].text_content() == "Answer in French."
    assert (first.max_tokens, first.enable_thinking) == (64, True)
    assert (second.max_tokens, second.enable_thinking) == (64, False)


async def test_sidebar_new_search_rename_delete(fake: FakeBalancer, tmp_path: Path) -> None:
    app = make_app(fake, tmp_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await chat_screen(pilot)
        await answer(pilot, screen, "apples are red")
        await pilot.press("ctrl+n")
        assert screen.conversation is None
        assert not screen.query(ChatMessage)
        await answer(pilot, screen, "bananas are yellow")
        conversations = screen.query_one("#chat-conversations", OptionList)
        assert conversations.option_count == 2

        await pilot.press("ctrl+f")
        await pilot.press(*"apple")
        await wait_until(pilot, lambda: conversations.option_count == 1)
        await pilot.press("ctrl+a", "ctrl+k")
        await wait_until(pilot, lambda: conversations.option_count == 2)

        conversations.focus()
        conversations.highlighted = 1  # the older one: apples
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.messages[0].content == "apples are red")

        conversations.focus()
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, TextPromptScreen))
        await pilot.press("ctrl+a", "ctrl+k", *"Fruit", "enter")
        await wait_until(
            pilot, lambda: screen.conversation is not None and screen.conversation.title == "Fruit"
        )

        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: conversations.option_count == 1)
        assert screen.conversation is None
    store = await ConversationStore.open(tmp_path / "conversations.db")
    assert [c.title for c in await store.conversations()] == ["bananas are yellow"]
    await store.close()


@pytest.mark.parametrize(
    ("item", "problem", "advice"),
    [
        (ErrorDetails(code=503, description="Buffered requests overflow"), "503", "buffer"),
        (
            ErrorDetails(code=504, description="Waiting for available slot timed out"),
            "504",
            "--buffered-request-timeout",
        ),
        (
            ErrorDetails(code=502, description="Agent controller connection closed"),
            "502",
            "disconnected",
        ),
        (
            TokenGenerationDisabled(value="Token generation is disabled"),
            "TokenGenerationDisabled",
            "Turn embeddings off",
        ),
    ],
)
async def test_errors_show_inline_with_what_to_do(
    fake: FakeBalancer, tmp_path: Path, item: ChatItem, problem: str, advice: str
) -> None:
    fake.script.conversation = lambda _: [item]
    app = make_app(fake, tmp_path)
    async with app.run_test() as pilot:
        screen = await chat_screen(pilot)
        stored = await answer(pilot, screen, "Hi")
        error = screen.query_one(ChatError)
        assert problem in error.problem
        assert advice in error.advice
        assert "ctrl+r to retry" in str(error.render()).replace("^r", "ctrl+r")
        assert stored.outcome == "failed"
        # The failed answer is not part of what the model sees next time.
        fake.script.conversation = None
        await pilot.press("ctrl+r")
        await wait_until(
            pilot, lambda: len(fake.conversation_requests) == 2 and not screen.generating
        )
        assert screen.messages[-1].outcome == "complete"
        assert not screen.query(ChatError)


async def test_malformed_frames_never_stop_the_app(fake: FakeBalancer, tmp_path: Path) -> None:
    garbage = [
        RawFrame("not json at all"),
        RawFrame("{}"),
        RawFrame('{"Response": 42}'),
        RawFrame('{"Response": {"request_id": 7, "generated_by": [], "response": null}}'),
        RawFrame('{"Error": {"request_id": "x", "error": {"code": "big", "description": 1}}}'),
        RawFrame('{"Notification": "Whatever"}'),
        RawFrame("\u0000\uffff" * 100),
        RawFrame('[1, 2, {"GeneratedToken": {"ContentToken": "x"}}]'),
    ]
    fake.script.conversation = lambda _: [
        *garbage,
        ContentToken(value="still fine"),
        Done(usage=usage(1, 1)),
    ]
    fake.script.agents_stream_data = b'{"agents": "nope"}'
    app = make_app(fake, tmp_path)
    async with app.run_test() as pilot:
        screen = await chat_screen(pilot)
        stored = await answer(pilot, screen, "Hi")
        assert stored.content == "still fine"
        await wait_until(pilot, lambda: app.connection.status == "disconnected")
        assert "agents" in app.connection.detail
        state = screen.query_one(ConnectionBar).query_one("#connection-state")
        assert state.tooltip == app.connection.detail
        assert app.is_running

        # Nothing but garbage, then silence: Esc still ends the answer.
        fake.script.conversation = lambda _: garbage
        await send(pilot, screen, "again")
        await pilot.pause(0.2)
        await pilot.press("escape")
        await wait_until(pilot, lambda: not screen.generating)
        assert screen.messages[-1].outcome == "stopped"
        assert app.is_running


async def test_export_and_copy(fake: FakeBalancer, tmp_path: Path) -> None:
    fake.script.conversation = lambda _: [
        ContentToken(value="Run this:\n\n```sh\necho hi\n```\n"),
        Done(usage=usage(3, 4)),
    ]
    app = make_app(fake, tmp_path, TuiConfig(cursor_blink=False, export_dir=tmp_path / "out"))
    (tmp_path / "out").mkdir()
    async with app.run_test() as pilot:
        screen = await chat_screen(pilot)
        await answer(pilot, screen, "How do I greet?")
        await pilot.press("ctrl+s")
        exported = tmp_path / "out" / "how-do-i-greet-1.md"
        await wait_until(pilot, exported.exists)
        text = exported.read_text()
        assert text.startswith("# How do I greet?")
        assert "## You\n\nHow do I greet?" in text
        assert "```sh\necho hi\n```" in text
        assert "*alpha · 3 prompt · 4 generated" in text

        message = screen.query(ChatMessage).last()
        message.focus()
        await pilot.press("b")
        assert app.clipboard == "echo hi\n"
        await pilot.press("y")
        assert app.clipboard == message.content


async def test_palette_help_and_keymap(fake: FakeBalancer, tmp_path: Path) -> None:
    seen, reply = numbered_answers()
    fake.script.conversation = reply
    config = TuiConfig(cursor_blink=False, keymap={"chat.regenerate": "f9"})
    app = make_app(fake, tmp_path, config)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await chat_screen(pilot)
        await answer(pilot, screen, "question")

        titles = {command.title for command in app.get_system_commands(screen)}
        for expected in (
            "Regenerate",
            "New",
            "Settings",
            "Export to Markdown",
            "Rename",
            "Delete",
            "Copy last answer",
            "Copy last code block",
            "Go to Monitor",
            "Help: keys",
            "Theme",
        ):
            assert expected in titles, expected

        await pilot.press("f9")
        await wait_until(pilot, lambda: len(seen) == 2 and not screen.generating)
        assert screen.messages[-1].content == "answer 2"

        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        table: DataTable[str] = app.screen.query_one("#help-keys", DataTable)
        rows = [table.get_row_at(index) for index in range(table.row_count)]
        assert ["f9", "Regenerate", "This screen", "chat.regenerate"] in rows
        assert any(row[3] == "chat.send" for row in rows)
        assert any(row[3] == "app.monitor" for row in rows)
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is screen)

        # The palette runs what it lists.
        await pilot.press("ctrl+p")
        await pilot.pause(0.3)
        await pilot.press(*"Copy last answer")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.clipboard == "answer 2", what="the palette command")


async def test_other_screens_get_the_connection_bar(fake: FakeBalancer, tmp_path: Path) -> None:
    app = make_app(fake, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await chat_screen(pilot)
        for key, mode in (("f3", "embeddings"), ("f4", "monitor"), ("f5", "cluster")):
            await pilot.press(key)

            def in_mode(mode: str = mode) -> bool:
                return app.current_mode == mode

            await wait_until(pilot, in_mode)
            await wait_until(pilot, lambda: bool(app.screen.query(ConnectionBar)))
        await pilot.press("f2")
        await wait_until(pilot, lambda: app.screen is screen)
        # The tabs are clickable: " f2 Chat  f3 Embeddings …".
        await pilot.click(ConnectionBar, offset=(13, 0))
        await wait_until(pilot, lambda: app.current_mode == "embeddings")
        # After a 501 the embeddings screen asks for embeddings to be enabled.
        app.screen.post_message(EmbeddingsScreen.EnableEmbeddingsRequested())
        await wait_until(pilot, lambda: app.current_mode == "cluster")


async def test_theme_choice_is_saved(fake: FakeBalancer, tmp_path: Path) -> None:
    config_file = tmp_path / "config.toml"
    config_file.write_text('# mine\n[keymap]\n"chat.new" = "ctrl+n"\n')
    options = tui_options(
        fake.inference_addr, fake.management_addr, tmp_path, config_path=config_file
    )
    app = PaddlerTuiApp(options)
    async with app.run_test() as pilot:
        await chat_screen(pilot)
        app.theme = "nord"
        await wait_until(pilot, lambda: 'theme = "nord"' in config_file.read_text())
    assert config_file.read_text() == 'theme = "nord"\n# mine\n[keymap]\n"chat.new" = "ctrl+n"\n'


async def test_quitting_mid_answer_keeps_what_arrived(fake: FakeBalancer, tmp_path: Path) -> None:
    fake.script.conversation = lambda _: [ContentToken(value=f"w{i} ") for i in range(500)]
    fake.script.item_delay_s = 0.02
    app = make_app(fake, tmp_path)
    async with app.run_test() as pilot:
        screen = await chat_screen(pilot)
        await send(pilot, screen, "Long one")
        widget = screen.query(ChatMessage).last()
        await wait_until(pilot, lambda: "w2" in widget.content)
        await pilot.press("ctrl+q")
        await asyncio.wait_for(_exited(app), 10)
    store = await ConversationStore.open(tmp_path / "conversations.db")
    conversation = (await store.conversations())[0]
    last = (await store.messages(conversation.id))[-1]
    await store.close()
    assert last.outcome == "stopped"
    assert last.content.startswith("w0 w1 w2")


async def _exited(app: PaddlerTuiApp) -> None:
    while app.is_running:
        await asyncio.sleep(0.02)
