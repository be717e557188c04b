"""Where the balancer keeps its desired state: in memory, or in a JSON file (``--state-database``).

The file holds ``{"balancer_desired_state": …, "version": "1"}`` like Paddler's, so either can read
a file the other wrote. Unlike Paddler, which truncates and rewrites the file in place, writes here
go to a temporary file that atomically replaces the old one, so a crash mid-write never leaves a
half-written state behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import orjson

from paddler_tui.protocol.codec import adapter_for, decode, to_jsonable
from paddler_tui.protocol.desired_state import BalancerDesiredState
from paddler_tui.protocol.errors import ProtocolError
from paddler_tui.protocol.wire import WireModel

logger = logging.getLogger(__name__)

# RFC 3986 scheme; anything without one is a relative reference, which Paddler's URL parser rejects.
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_EXPECTED = "use memory:// or file:///absolute/path.json"


class StateDatabaseError(Exception):
    """A bad ``--state-database`` value, or a state file that cannot be read, parsed or written."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class MemoryLocation:
    pass


@dataclass(frozen=True)
class FileLocation:
    path: Path


StateDatabaseLocation = MemoryLocation | FileLocation


def parse_state_database_url(value: str) -> StateDatabaseLocation:
    """Parse ``--state-database`` the way Paddler does; raise :class:`StateDatabaseError`."""
    match = _SCHEME.match(value)
    if match is None:
        raise StateDatabaseError(f"Invalid state database URL '{value}': no scheme; {_EXPECTED}")
    scheme = match.group(1).lower()
    if scheme == "memory":
        return MemoryLocation()
    if scheme != "file":
        raise StateDatabaseError(f"Unsupported state database scheme '{scheme}'; {_EXPECTED}")
    # Paddler takes the text after ``file://`` verbatim (no percent-decoding), so this does too.
    if not value.startswith("file://"):
        raise StateDatabaseError(f"Invalid file URL '{value}': {_EXPECTED}")
    path = value.removeprefix("file://").strip()
    if not path:
        raise StateDatabaseError("File path cannot be empty")
    if not os.path.isabs(path):
        probable = os.path.abspath(os.path.expanduser(path))
        raise StateDatabaseError(
            "To avoid ambiguity, needing to guess the full file path (and to stay safe overall), "
            "Paddler requires absolute paths. "
            f"The path you wanted is *probably* '{probable}'. "
            f"If that is so, pass it as '--state-database file://{probable}'."
        )
    return FileLocation(Path(path))


class StateDatabase(Protocol):
    async def read(self) -> BalancerDesiredState: ...

    async def store(self, state: BalancerDesiredState) -> None: ...


class MemoryStateDatabase:
    """The state lives only as long as the process."""

    def __init__(self, initial: BalancerDesiredState | None = None) -> None:
        self._state = initial if initial is not None else BalancerDesiredState.default()

    async def read(self) -> BalancerDesiredState:
        return self._state

    async def store(self, state: BalancerDesiredState) -> None:
        self._state = state


class _StateFile(WireModel):
    balancer_desired_state: BalancerDesiredState
    version: str = "1"


def _serialize(state: BalancerDesiredState) -> bytes:
    document = _StateFile(balancer_desired_state=state)
    return orjson.dumps(to_jsonable(adapter_for(_StateFile), document), option=orjson.OPT_INDENT_2)


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    # 0o666 lets the umask decide the permissions, as creating the file in place would.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            with contextlib.suppress(FileNotFoundError):
                # Keep permissions an operator gave the existing file.
                os.fchmod(file.fileno(), stat.S_IMODE(os.stat(path).st_mode))
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    # The rename itself is only durable once the directory entry is on disk.
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class FileStateDatabase:
    """Every read goes to the file, so manual edits show up on the next GET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Orders writes, and keeps a default-creating read from clobbering a concurrent store.
        self._write_lock = asyncio.Lock()

    async def read(self) -> BalancerDesiredState:
        content = await asyncio.to_thread(self._read_bytes)
        if content:
            return self._parse(content)
        async with self._write_lock:
            # Another task may have created the file while this one waited.
            content = await asyncio.to_thread(self._read_bytes)
            if content:
                return self._parse(content)
            logger.warning(
                "State database file is missing or empty; storing the default state: '%s'",
                self.path,
            )
            default = BalancerDesiredState.default()
            await self._write(default, "Failed to store the default state")
            return default

    async def store(self, state: BalancerDesiredState) -> None:
        async with self._write_lock:
            await self._write(state, "Unable to write the state database file")

    def _read_bytes(self) -> bytes | None:
        """The file's bytes, or None when it does not exist (empty files come back as b"")."""
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StateDatabaseError(
                f"Unable to read the state database file '{self.path}': {error.strerror or error}"
            ) from error

    def _parse(self, content: bytes) -> BalancerDesiredState:
        try:
            document: _StateFile = decode(adapter_for(_StateFile), content)
        except ProtocolError as error:
            raise StateDatabaseError(
                f"Unable to parse database file contents: '{self.path}'. Either that is not a "
                "valid database file, or this version of Paddler is incompatible with it. "
                f"({error.message})"
            ) from error
        return document.balancer_desired_state

    async def _write(self, state: BalancerDesiredState, context: str) -> None:
        try:
            await asyncio.to_thread(_write_atomically, self.path, _serialize(state))
        except OSError as error:
            raise StateDatabaseError(
                f"{context} '{self.path}': {error.strerror or error}"
            ) from error


async def open_state_database(location: StateDatabaseLocation) -> StateDatabase:
    """Open the database; a file is read once so a corrupt one stops the balancer at startup."""
    if isinstance(location, MemoryLocation):
        return MemoryStateDatabase()
    database = FileStateDatabase(location.path)
    await database.read()
    return database
