from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from paddler_tui.protocol.codec import adapter_for, validate
from paddler_tui.protocol.desired_state import BalancerDesiredState, ChatTemplate
from paddler_tui.protocol.model_source import LocalToAgent, Url
from paddler_tui.server.balancer.state_database import (
    FileLocation,
    FileStateDatabase,
    MemoryLocation,
    MemoryStateDatabase,
    StateDatabaseError,
    open_state_database,
    parse_state_database_url,
)

STATE = adapter_for(BalancerDesiredState)

DEFAULT_STATE_JSON = {
    "chat_template_override": None,
    "inference_parameters": {
        "n_batch": 2048,
        "context_size": 8192,
        "embedding_batch_size": 256,
        "enable_embeddings": False,
        "image_resize_to_fit": 1024,
        "k_cache_dtype": "Q8_0",
        "v_cache_dtype": "Q8_0",
        "min_p": 0.05,
        "n_gpu_layers": 0,
        "penalty_frequency": 0.0,
        "penalty_last_n": -1,
        "penalty_presence": 0.8,
        "penalty_repeat": 1.1,
        "pooling_type": "Last",
        "temperature": 0.8,
        "top_k": 80,
        "top_p": 0.8,
    },
    "model": "None",
    "multimodal_projection": "None",
    "use_chat_template_override": False,
}


def custom_state(model_path: str = "/models/a.gguf") -> BalancerDesiredState:
    return BalancerDesiredState.default().model_copy(
        update={
            "model": LocalToAgent(value=model_path),
            "multimodal_projection": Url(url="https://example.com/mmproj.gguf"),
            "chat_template_override": ChatTemplate(content="{{ messages }} ünïcode"),
            "use_chat_template_override": True,
        }
    )


# --- URL parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["memory:", "memory://", "memory://anything", "MEMORY://"])
def test_memory_urls(value: str) -> None:
    assert parse_state_database_url(value) == MemoryLocation()


def test_absolute_file_url() -> None:
    assert parse_state_database_url("file:///var/lib/paddler/state.json") == FileLocation(
        Path("/var/lib/paddler/state.json")
    )


@pytest.mark.parametrize("value", ["file://state.json", "file://./dir/state.json"])
def test_relative_file_path_hints_the_absolute_one(value: str) -> None:
    with pytest.raises(StateDatabaseError) as caught:
        parse_state_database_url(value)
    relative = value.removeprefix("file://")
    expected = os.path.abspath(relative)
    assert f"--state-database file://{expected}" in caught.value.message
    assert "requires absolute paths" in caught.value.message


def test_relative_home_path_hint_expands_the_tilde() -> None:
    with pytest.raises(StateDatabaseError) as caught:
        parse_state_database_url("file://~/state.json")
    assert f"file://{os.path.expanduser('~/state.json')}" in caught.value.message


@pytest.mark.parametrize("value", ["file://", "file://   "])
def test_empty_file_path(value: str) -> None:
    with pytest.raises(StateDatabaseError, match="File path cannot be empty"):
        parse_state_database_url(value)


@pytest.mark.parametrize("value", ["file:relative.json", "file:/abs.json"])
def test_file_url_without_authority(value: str) -> None:
    with pytest.raises(StateDatabaseError, match="Invalid file URL"):
        parse_state_database_url(value)


@pytest.mark.parametrize("value", ["mysql://localhost/db", "http://example.com/state.json"])
def test_unsupported_scheme(value: str) -> None:
    with pytest.raises(StateDatabaseError, match="Unsupported state database scheme"):
        parse_state_database_url(value)


@pytest.mark.parametrize("value", ["memory", "not-a-url", "", "/abs/state.json"])
def test_value_without_scheme(value: str) -> None:
    with pytest.raises(StateDatabaseError, match="no scheme"):
        parse_state_database_url(value)


# --- memory -----------------------------------------------------------------------------------


async def test_memory_database_starts_at_default_and_keeps_what_is_stored() -> None:
    database = await open_state_database(MemoryLocation())
    assert isinstance(database, MemoryStateDatabase)
    assert await database.read() == BalancerDesiredState.default()
    await database.store(custom_state())
    assert await database.read() == custom_state()


# --- file -------------------------------------------------------------------------------------


async def test_missing_file_is_created_with_the_default_state(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.json"
    with caplog.at_level(logging.WARNING):
        database = await open_state_database(FileLocation(path))
    assert await database.read() == BalancerDesiredState.default()
    assert json.loads(path.read_text()) == {
        "balancer_desired_state": DEFAULT_STATE_JSON,
        "version": "1",
    }
    assert str(path) in caplog.text


async def test_empty_file_is_filled_with_the_default_state(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(b"")
    assert await FileStateDatabase(path).read() == BalancerDesiredState.default()
    assert json.loads(path.read_text())["balancer_desired_state"] == DEFAULT_STATE_JSON


async def test_missing_parent_directory_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "state.json"
    with pytest.raises(StateDatabaseError, match="default state") as caught:
        await open_state_database(FileLocation(path))
    assert str(path) in caught.value.message


async def test_store_round_trips_through_a_fresh_instance(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    await FileStateDatabase(path).store(custom_state())
    assert await FileStateDatabase(path).read() == custom_state()


async def test_file_is_pretty_printed_in_paddlers_layout(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    await FileStateDatabase(path).store(custom_state())
    text = path.read_text(encoding="utf-8")
    assert text.startswith('{\n  "balancer_desired_state": {\n    "chat_template_override": {')
    assert text.endswith('\n  },\n  "version": "1"\n}')
    assert "ünïcode" in text


async def test_every_read_sees_manual_edits(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    database = await open_state_database(FileLocation(path))
    document = json.loads(path.read_text())
    document["balancer_desired_state"]["model"] = {"LocalToAgent": "/edited.gguf"}
    path.write_text(json.dumps(document))
    assert (await database.read()).model == LocalToAgent(value="/edited.gguf")


async def test_version_defaults_to_one(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"balancer_desired_state": DEFAULT_STATE_JSON}))
    assert await FileStateDatabase(path).read() == BalancerDesiredState.default()


async def test_store_leaves_no_temporary_files(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    database = FileStateDatabase(path)
    for index in range(3):
        await database.store(custom_state(f"/m{index}.gguf"))
    assert [entry.name for entry in tmp_path.iterdir()] == ["state.json"]


async def test_store_keeps_the_file_permissions(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    database = FileStateDatabase(path)
    await database.store(custom_state())
    path.chmod(0o600)
    await database.store(custom_state("/other.gguf"))
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b"this is not valid json", "invalid JSON"),
        (b'{"balancer_desired_state": {}}', "balancer_desired_state.inference_parameters"),
        (b"[]", ""),
    ],
)
async def test_corrupt_file_names_the_file(tmp_path: Path, content: bytes, detail: str) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(StateDatabaseError) as caught:
        await open_state_database(FileLocation(path))
    message = caught.value.message
    assert message.startswith(f"Unable to parse database file contents: '{path}'.")
    assert "incompatible" in message
    assert detail in message
    # A corrupt file is never overwritten with the default.
    assert path.read_bytes() == content


async def test_unknown_top_level_key_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(
        json.dumps({"balancer_desired_state": DEFAULT_STATE_JSON, "version": "1", "extra": 1})
    )
    with pytest.raises(StateDatabaseError, match="extra"):
        await FileStateDatabase(path).read()


async def test_directory_path_is_a_read_error(tmp_path: Path) -> None:
    with pytest.raises(StateDatabaseError, match="Unable to read"):
        await FileStateDatabase(tmp_path).read()


async def test_write_error_when_the_parent_is_a_regular_file(tmp_path: Path) -> None:
    parent = tmp_path / "not-a-directory"
    parent.write_text("")
    database = FileStateDatabase(parent / "state.json")
    with pytest.raises(StateDatabaseError, match="Unable to write") as caught:
        await database.store(custom_state())
    assert str(parent / "state.json") in caught.value.message
    with pytest.raises(StateDatabaseError):
        await database.read()


async def test_failed_replace_keeps_the_old_file_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    database = FileStateDatabase(path)
    await database.store(custom_state())
    before = path.read_bytes()

    def full_disk(source: object, destination: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(StateDatabaseError, match="No space left on device"):
        await database.store(custom_state("/new.gguf"))
    assert path.read_bytes() == before
    assert [entry.name for entry in tmp_path.iterdir()] == ["state.json"]


async def test_failed_fsync_is_a_store_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = FileStateDatabase(tmp_path / "state.json")

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(StateDatabaseError, match="Input/output error"):
        await database.store(custom_state())
    assert list(tmp_path.iterdir()) == []


WRITER = """
import asyncio, sys
from pathlib import Path
from paddler_tui.protocol.desired_state import BalancerDesiredState, ChatTemplate
from paddler_tui.server.balancer.state_database import FileStateDatabase

async def main() -> None:
    database = FileStateDatabase(Path(sys.argv[1]))
    await database.store(BalancerDesiredState.default())
    print("ready", flush=True)

    async def writer(tag: int) -> None:
        counter = 0
        while True:
            counter += 1
            # Large states make a torn write likely to be caught if writes were not atomic.
            content = f"{tag}-{counter}-" + "x" * (200_000 + counter % 997)
            state = BalancerDesiredState.default().model_copy(
                update={"chat_template_override": ChatTemplate(content=content)}
            )
            await database.store(state)

    await asyncio.gather(*(writer(tag) for tag in range(4)))

asyncio.run(main())
"""


def test_killed_writer_never_leaves_a_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        deadline = time.monotonic() + 0.5
        reads = 0
        while time.monotonic() < deadline:
            # Parsing strictly proves every visible version is complete.
            document = json.loads(path.read_bytes())
            validate(STATE, document["balancer_desired_state"])
            reads += 1
        assert reads > 0
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=5)
        if child.stdout is not None:
            child.stdout.close()
    state = validate(STATE, json.loads(path.read_bytes())["balancer_desired_state"])
    assert state.chat_template_override is not None
