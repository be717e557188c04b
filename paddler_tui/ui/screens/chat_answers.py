"""The chat's answers: sending a prompt, streaming the answer, stopping, regenerating, editing."""

from __future__ import annotations

import contextlib

from textual import on, work
from textual.css.query import NoMatches

from paddler_tui.client.chat.answer import read_answer
from paddler_tui.client.chat.conversation_store import Conversation, StoredMessage
from paddler_tui.client.chat.generation import Generation
from paddler_tui.ui.chat_text import answer_summary
from paddler_tui.ui.key_bindings import shown_key
from paddler_tui.ui.screens.chat_base import ChatScreenBase
from paddler_tui.ui.widgets.chat_prompt import ChatPrompt


class ChatAnswers(ChatScreenBase):
    @on(ChatPrompt.Submitted)
    async def _submitted(self, event: ChatPrompt.Submitted) -> None:
        if self.generating:
            stop = shown_key(self.app, "chat.stop", "esc")
            self.notify(f"An answer is still streaming; {stop} stops it.", severity="warning")
            return
        self._prompt.clear()
        if self._editing is not None:
            await self._drop_from(self._editing)
            self._editing = None
        stored = await self.session.add_prompt(event.text)
        await self._log.add(stored)
        await self._refresh_sidebar()
        self._answer()

    async def _drop_from(self, message: StoredMessage) -> None:
        """Forget ``message`` and everything after it, stored and shown."""
        await self.session.drop_from(message)
        await self._log.remove_from(message.id)

    def _answer(self) -> None:
        conversation = self.session.conversation
        assert conversation is not None
        self._generation = Generation(self.services, self.session.request(), clock=self._clock)
        self.generating = True
        self._generation_worker = self._stream_answer(self._generation, conversation)

    @work(exclusive=True, group="chat-generation")
    async def _stream_answer(self, generation: Generation, conversation: Conversation) -> None:
        widget = await self._log.start_answer()
        end = await read_answer(
            generation, on_content=widget.append_content, on_reasoning=widget.append_reasoning
        )
        stored = await self.session.add_message(
            conversation.id, end.message(widget.content, widget.reasoning)
        )
        widget.message_id = stored.id
        failure = end.failure
        await widget.finish(
            summary=answer_summary(end.generated_by, end.usage, end.tokens_per_second),
            stopped=end.stopped,
            problem=failure.problem if failure is not None else None,
            advice=failure.advice if failure is not None else "",
            retry_hint=self._retry_hint() if failure is not None and failure.retryable else "",
        )
        self._generation = None
        # The app can shut down under a streaming answer, its widgets gone before the worker.
        with contextlib.suppress(NoMatches):
            self.generating = False
            self._show_last_answer()

    async def action_stop(self) -> None:
        if self.generating:
            if self._generation is not None:
                await self._generation.stop()
            return
        if self._editing is not None:
            self._editing = None
            self._prompt.clear()
            self._show_state()
            self.refresh_bindings()

    async def action_regenerate(self) -> None:
        if self.generating or not self.messages or self.conversation is None:
            return
        last = self.messages[-1]
        if last.role == "assistant":
            await self._drop_from(last)
        if not self.messages:
            return
        self._answer()

    def action_edit_last(self) -> None:
        if self.generating:
            return
        last_user = next((m for m in reversed(self.messages) if m.role == "user"), None)
        if last_user is None:
            return
        self._editing = last_user
        prompt = self._prompt
        prompt.text = last_user.content
        prompt.move_cursor(prompt.document.end)
        prompt.focus()
        self._show_state()
        self.refresh_bindings()
