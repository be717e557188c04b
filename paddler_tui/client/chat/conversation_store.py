"""Conversations and their messages in SQLite, with ``PRAGMA user_version`` schema migrations.

sqlite3 blocks, so every call runs in a worker thread (``asyncio.to_thread``) behind one lock;
the app's event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import ValidationError

from paddler_tui.protocol.usage import TokenUsage

DATABASE_FILENAME = "conversations.db"

T = TypeVar("T")

Role = Literal["user", "assistant"]
# How an assistant message ended: the whole answer, stopped by the user, or an error.
Outcome = Literal["complete", "stopped", "failed"]


@dataclass(frozen=True)
class Migration:
    """The statements that take the schema from ``version - 1`` to ``version``."""

    version: int
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        (
            """
            CREATE TABLE conversation (
                id INTEGER PRIMARY KEY,
                title TEXT NOT NULL,
                system_prompt TEXT NOT NULL DEFAULT '',
                max_tokens INTEGER NOT NULL,
                enable_thinking INTEGER NOT NULL DEFAULT 0,
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL
            )
            """,
            """
            CREATE TABLE message (
                id INTEGER PRIMARY KEY,
                conversation_id INTEGER NOT NULL
                    REFERENCES conversation(id) ON DELETE CASCADE,
                role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
                content TEXT NOT NULL,
                reasoning TEXT NOT NULL DEFAULT '',
                outcome TEXT NOT NULL DEFAULT 'complete'
                    CHECK (outcome IN ('complete', 'stopped', 'failed')),
                problem TEXT,
                advice TEXT,
                generated_by TEXT,
                usage TEXT,
                tokens_per_second REAL,
                created_at REAL NOT NULL
            )
            """,
            "CREATE INDEX message_by_conversation ON message (conversation_id, id)",
            "CREATE INDEX conversation_by_update ON conversation (updated_at)",
        ),
    ),
)


class StoreError(Exception):
    """The database cannot be opened or upgraded; the message says why."""


@dataclass(frozen=True)
class ConversationSettings:
    system_prompt: str
    max_tokens: int
    enable_thinking: bool


@dataclass(frozen=True)
class Conversation:
    id: int
    title: str
    settings: ConversationSettings
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class NewMessage:
    role: Role
    content: str
    reasoning: str = ""
    outcome: Outcome = "complete"
    problem: str | None = None
    advice: str | None = None
    generated_by: str | None = None
    usage: TokenUsage | None = None
    tokens_per_second: float | None = None


@dataclass(frozen=True, kw_only=True)
class StoredMessage(NewMessage):
    id: int
    conversation_id: int


def migrate(connection: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the schema to the last migration's version, each step atomically; return it."""
    latest = migrations[-1].version if migrations else 0
    current: int = connection.execute("PRAGMA user_version").fetchone()[0]
    if current > latest:
        raise StoreError(
            f"the database has schema version {current}, newer than this paddler-tui's "
            f"{latest}; upgrade paddler-tui or move the file aside"
        )
    for migration in migrations:
        if migration.version <= current:
            continue
        try:
            connection.execute("BEGIN IMMEDIATE")
            for statement in migration.statements:
                connection.execute(statement)
            # user_version lives in the file header and is part of the transaction.
            connection.execute(f"PRAGMA user_version = {int(migration.version)}")
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            connection.execute("ROLLBACK")
            raise StoreError(
                f"upgrading the database to schema version {migration.version} failed: {error}"
            ) from error
        current = migration.version
    return current


def _usage(text: str | None) -> TokenUsage | None:
    if text is None:
        return None
    try:
        return TokenUsage.model_validate_json(text)
    except ValidationError:
        return None


def _message(row: sqlite3.Row) -> StoredMessage:
    return StoredMessage(
        id=row["id"],
        conversation_id=row["conversation_id"],
        role=row["role"],
        content=row["content"],
        reasoning=row["reasoning"],
        outcome=row["outcome"],
        problem=row["problem"],
        advice=row["advice"],
        generated_by=row["generated_by"],
        usage=_usage(row["usage"]),
        tokens_per_second=row["tokens_per_second"],
    )


def _conversation(row: sqlite3.Row) -> Conversation:
    return Conversation(
        id=row["id"],
        title=row["title"],
        settings=ConversationSettings(
            system_prompt=row["system_prompt"],
            max_tokens=row["max_tokens"],
            enable_thinking=bool(row["enable_thinking"]),
        ),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class ConversationStore:
    def __init__(self, connection: sqlite3.Connection, *, now: Callable[[], float]) -> None:
        self._connection = connection
        self._lock = threading.Lock()
        self._now = now

    @classmethod
    async def open(cls, path: Path, *, now: Callable[[], float] = time.time) -> ConversationStore:
        """Open (creating if needed) and migrate the database at ``path``; StoreError if not."""

        def connect() -> sqlite3.Connection:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                # Autocommit: migrations and writes manage their own transactions.
                connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            except (OSError, sqlite3.Error) as error:
                raise StoreError(f"cannot open {path}: {error}") from error
            try:
                connection.row_factory = sqlite3.Row
                connection.execute("PRAGMA foreign_keys = ON")
                connection.execute("PRAGMA journal_mode = WAL")
                migrate(connection)
            except sqlite3.Error as error:
                connection.close()
                raise StoreError(f"cannot use {path}: {error}") from error
            except StoreError:
                connection.close()
                raise
            return connection

        return cls(await asyncio.to_thread(connect), now=now)

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                return work(self._connection)

        return await asyncio.to_thread(locked)

    async def close(self) -> None:
        await self._run(lambda connection: connection.close())

    async def conversations(self, search: str = "") -> list[Conversation]:
        """Newest first; ``search`` matches titles and message text, case-insensitively."""
        pattern = f"%{search.strip()}%"

        def query(connection: sqlite3.Connection) -> list[Conversation]:
            rows = connection.execute(
                """
                SELECT * FROM conversation
                WHERE ?1 = '%%' OR title LIKE ?1 OR EXISTS (
                    SELECT 1 FROM message
                    WHERE message.conversation_id = conversation.id AND content LIKE ?1
                )
                ORDER BY updated_at DESC, id DESC
                """,
                (pattern,),
            ).fetchall()
            return [_conversation(row) for row in rows]

        return await self._run(query)

    async def conversation(self, conversation_id: int) -> Conversation | None:
        def query(connection: sqlite3.Connection) -> Conversation | None:
            row = connection.execute(
                "SELECT * FROM conversation WHERE id = ?", (conversation_id,)
            ).fetchone()
            return None if row is None else _conversation(row)

        return await self._run(query)

    async def create(self, title: str, settings: ConversationSettings) -> Conversation:
        now = self._now()

        def insert(connection: sqlite3.Connection) -> int:
            cursor = connection.execute(
                "INSERT INTO conversation (title, system_prompt, max_tokens, enable_thinking, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    title,
                    settings.system_prompt,
                    settings.max_tokens,
                    int(settings.enable_thinking),
                    now,
                    now,
                ),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

        conversation_id = await self._run(insert)
        return Conversation(conversation_id, title, settings, now, now)

    async def rename(self, conversation_id: int, title: str) -> None:
        await self._run(
            lambda connection: connection.execute(
                "UPDATE conversation SET title = ? WHERE id = ?", (title, conversation_id)
            )
        )

    async def update_settings(self, conversation_id: int, settings: ConversationSettings) -> None:
        await self._run(
            lambda connection: connection.execute(
                "UPDATE conversation SET system_prompt = ?, max_tokens = ?, enable_thinking = ? "
                "WHERE id = ?",
                (
                    settings.system_prompt,
                    settings.max_tokens,
                    int(settings.enable_thinking),
                    conversation_id,
                ),
            )
        )

    async def delete(self, conversation_id: int) -> None:
        await self._run(
            lambda connection: connection.execute(
                "DELETE FROM conversation WHERE id = ?", (conversation_id,)
            )
        )

    async def messages(self, conversation_id: int) -> list[StoredMessage]:
        def query(connection: sqlite3.Connection) -> list[StoredMessage]:
            rows = connection.execute(
                "SELECT * FROM message WHERE conversation_id = ? ORDER BY id",
                (conversation_id,),
            ).fetchall()
            return [_message(row) for row in rows]

        return await self._run(query)

    async def add_message(self, conversation_id: int, message: NewMessage) -> StoredMessage:
        now = self._now()

        def insert(connection: sqlite3.Connection) -> int:
            connection.execute("BEGIN")
            try:
                cursor = connection.execute(
                    "INSERT INTO message (conversation_id, role, content, reasoning, outcome, "
                    "problem, advice, generated_by, usage, tokens_per_second, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        conversation_id,
                        message.role,
                        message.content,
                        message.reasoning,
                        message.outcome,
                        message.problem,
                        message.advice,
                        message.generated_by,
                        None if message.usage is None else message.usage.model_dump_json(),
                        message.tokens_per_second,
                        now,
                    ),
                )
                connection.execute(
                    "UPDATE conversation SET updated_at = ? WHERE id = ?", (now, conversation_id)
                )
            except sqlite3.Error:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
            assert cursor.lastrowid is not None
            return cursor.lastrowid

        message_id = await self._run(insert)
        return StoredMessage(**vars(message), id=message_id, conversation_id=conversation_id)

    async def delete_messages_from(self, conversation_id: int, message_id: int) -> None:
        """Delete ``message_id`` and every later message of the conversation."""
        await self._run(
            lambda connection: connection.execute(
                "DELETE FROM message WHERE conversation_id = ? AND id >= ?",
                (conversation_id, message_id),
            )
        )
