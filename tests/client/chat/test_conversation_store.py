"""The conversation store: versioned migrations, and what the chat keeps in it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from paddler_tui.client.chat.conversation_store import (
    MIGRATIONS,
    ConversationSettings,
    ConversationStore,
    Migration,
    NewMessage,
    StoreError,
    migrate,
)
from paddler_tui.protocol.usage import TokenUsage

SETTINGS = ConversationSettings(system_prompt="Be brief.", max_tokens=64, enable_thinking=True)
LATEST = MIGRATIONS[-1].version


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        version: int = connection.execute("PRAGMA user_version").fetchone()[0]
    return version


async def test_a_new_database_gets_the_latest_schema(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "conversations.db"
    store = await ConversationStore.open(path)
    await store.close()
    assert user_version(path) == LATEST
    # Opening again runs nothing twice.
    store = await ConversationStore.open(path)
    await store.close()
    assert user_version(path) == LATEST


def test_upgrades_step_by_step_and_keeps_the_data(tmp_path: Path) -> None:
    connection = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    assert migrate(connection) == LATEST
    connection.execute(
        "INSERT INTO conversation (title, max_tokens, created_at, updated_at) "
        "VALUES ('kept', 10, 1, 1)"
    )
    later = (
        *MIGRATIONS,
        Migration(LATEST + 1, ("ALTER TABLE conversation ADD COLUMN pinned INTEGER DEFAULT 0",)),
        Migration(LATEST + 2, ("CREATE INDEX conversation_pinned ON conversation (pinned)",)),
    )
    assert migrate(connection, later) == LATEST + 2
    row = connection.execute("SELECT title, pinned FROM conversation").fetchone()
    assert row == ("kept", 0)
    connection.close()


def test_a_failing_step_changes_nothing(tmp_path: Path) -> None:
    connection = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    migrate(connection)
    broken = (
        *MIGRATIONS,
        Migration(
            LATEST + 1,
            ("CREATE TABLE attachment (id INTEGER PRIMARY KEY)", "THIS IS NOT SQL"),
        ),
    )
    with pytest.raises(StoreError, match=f"schema version {LATEST + 1} failed"):
        migrate(connection, broken)
    assert connection.execute("PRAGMA user_version").fetchone()[0] == LATEST
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert "attachment" not in tables
    connection.close()


async def test_a_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "conversations.db"
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA user_version = {LATEST + 5}")
    with pytest.raises(StoreError, match="newer than this paddler-tui"):
        await ConversationStore.open(path)
    assert user_version(path) == LATEST + 5


async def test_conversations_messages_search_and_cascade(tmp_path: Path) -> None:
    ticks = iter(range(1, 100))
    store = await ConversationStore.open(tmp_path / "c.db", now=lambda: float(next(ticks)))
    first = await store.create("Cooking", SETTINGS)
    second = await store.create("Travel", ConversationSettings("", 1024, False))
    usage = TokenUsage.zero().model_copy(update={"prompt_tokens": 3, "content_tokens": 2})
    await store.add_message(first.id, NewMessage("user", "How long to boil an egg?"))
    answer = await store.add_message(
        first.id,
        NewMessage(
            "assistant",
            "Nine minutes.",
            reasoning="Hard-boiled.",
            generated_by="alpha",
            usage=usage,
            tokens_per_second=12.5,
        ),
    )
    # The conversation with the newest message comes first.
    assert [c.title for c in await store.conversations()] == ["Cooking", "Travel"]
    assert [c.title for c in await store.conversations("EGG")] == ["Cooking"]
    assert [c.title for c in await store.conversations("trav")] == ["Travel"]
    assert await store.conversations("nothing like this") == []

    messages = await store.messages(first.id)
    assert messages[-1] == answer
    assert (answer.usage, answer.reasoning, answer.tokens_per_second) == (
        usage,
        "Hard-boiled.",
        12.5,
    )

    await store.rename(second.id, "Trips")
    await store.update_settings(second.id, SETTINGS)
    renamed = await store.conversation(second.id)
    assert renamed is not None
    assert (renamed.title, renamed.settings) == ("Trips", SETTINGS)

    await store.delete_messages_from(first.id, answer.id)
    assert [m.role for m in await store.messages(first.id)] == ["user"]
    await store.delete(first.id)
    assert await store.conversation(first.id) is None
    assert await store.messages(first.id) == []
    await store.close()
