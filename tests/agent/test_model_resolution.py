"""Model source resolution and the resumable URL download (spec §9.1), against local servers."""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import time
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from paddler_tui.protocol.agent_issue import (
    CacheCannotAcquireLock,
    CacheDirectoryIsNotWritable,
    CacheStorageIsFull,
    DownloadInterrupted,
    DownloadServerDeniedAccess,
    DownloadServerErrored,
    DownloadServerIsUnreachable,
    DownloadServerRejectedRequest,
    DownloadUrlIsMalformed,
    HuggingFaceCannotAcquireLock,
    HuggingFaceModelDoesNotExist,
    HuggingFacePermissions,
    ModelCacheIsCorrupted,
    ModelDoesNotExistAtUrl,
    ModelFileDoesNotExist,
    ModelPath,
    MultimodalProjectionCannotBeLoaded,
)
from paddler_tui.protocol.model_source import HuggingFace, LocalToAgent, NoModel, Url
from paddler_tui.server.agent.models.download import download_url_model
from paddler_tui.server.agent.models.resolution import ModelResolutionError, resolve_model
from tests.agent.http_file_server import ETAG, PAYLOAD, FakeServer

if TYPE_CHECKING:
    from collections.abc import Iterator

HALF = len(PAYLOAD) // 2


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "paddler-cache"
    monkeypatch.setenv("PADDLER_CACHE_DIR", str(cache))
    return cache


def _cached_path(cache: Path, url: str) -> Path:
    return cache / "downloaded-models" / hashlib.sha256(url.encode()).hexdigest()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def _issue_of(source: Url | HuggingFace | LocalToAgent, **kwargs: Any) -> object:
    with pytest.raises(ModelResolutionError) as raised:
        await resolve_model(source, **kwargs)
    return raised.value.issue


# --- Url ---------------------------------------------------------------------------------------


async def test_interrupted_download_keeps_the_partial_file_and_resumes(
    server: FakeServer, cache_dir: Path
) -> None:
    url = f"{server.base_url}/models/model.gguf"
    final = _cached_path(cache_dir, url)
    partial = final.with_name(final.name + ".partial")
    server.cut_next = 1

    assert await _issue_of(Url(url=url)) == DownloadInterrupted(model_path=url)
    assert partial.read_bytes() == PAYLOAD[:HALF]
    assert not final.exists()

    progress: list[tuple[int, int | None, str]] = []
    started = time.monotonic()
    path = await resolve_model(Url(url=url), on_progress=lambda *args: progress.append(args))
    elapsed = time.monotonic() - started

    assert path == str(final)
    assert final.read_bytes() == PAYLOAD
    assert not partial.exists()
    assert server.ranges() == [None, f"bytes={HALF}-"]
    assert progress[0] == (HALF, len(PAYLOAD), "model.gguf")
    assert progress[-1] == (len(PAYLOAD), len(PAYLOAD), "model.gguf")
    # Throttled to 10 a second, plus the forced first and last reports.
    assert len(progress) <= 3 + elapsed / 0.1


async def test_a_finished_download_is_served_from_the_cache(server: FakeServer) -> None:
    url = f"{server.base_url}/model.gguf"
    first = await resolve_model(Url(url=url))
    second = await resolve_model(Url(url=url))
    assert first == second
    assert len(server.requests) == 1


async def test_a_200_answer_to_a_range_request_restarts_from_zero(
    server: FakeServer, cache_dir: Path
) -> None:
    url = f"{server.base_url}/ignores-range.gguf"
    final = _cached_path(cache_dir, url)
    final.parent.mkdir(parents=True)
    final.with_name(final.name + ".partial").write_bytes(b"stale bytes")

    assert await resolve_model(Url(url=url)) == str(final)
    assert final.read_bytes() == PAYLOAD
    assert server.ranges() == ["bytes=11-"]


@pytest.mark.parametrize("route", ["wrong-range.gguf", "416.gguf"])
async def test_a_stale_partial_file_is_discarded(
    server: FakeServer, cache_dir: Path, route: str
) -> None:
    url = f"{server.base_url}/{route}"
    final = _cached_path(cache_dir, url)
    final.parent.mkdir(parents=True)
    final.with_name(final.name + ".partial").write_bytes(b"x" * 100)

    assert await resolve_model(Url(url=url)) == str(final)
    assert final.read_bytes() == PAYLOAD
    assert server.ranges() == ["bytes=100-", None]


@pytest.mark.parametrize(
    ("status", "issue_type"),
    [
        (404, ModelDoesNotExistAtUrl),
        (401, DownloadServerDeniedAccess),
        (403, DownloadServerDeniedAccess),
        (400, DownloadServerRejectedRequest),
        (429, DownloadServerRejectedRequest),
        (500, DownloadServerErrored),
        (503, DownloadServerErrored),
    ],
)
async def test_http_status_mapping(server: FakeServer, status: int, issue_type: type[Any]) -> None:
    url = f"{server.base_url}/status/{status}"
    assert await _issue_of(Url(url=url)) == issue_type(model_path=url)
    assert len(server.requests) == 1  # no retries


async def test_unreachable_server() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/model.gguf"
    assert await _issue_of(Url(url=url)) == DownloadServerIsUnreachable(model_path=url)


async def test_a_server_stalling_before_headers_is_unreachable(server: FakeServer) -> None:
    url = f"{server.base_url}/stall.gguf"
    with pytest.raises(ModelResolutionError) as raised:
        await download_url_model(url, http_timeout=httpx.Timeout(0.3))
    assert raised.value.issue == DownloadServerIsUnreachable(model_path=url)


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/model.gguf", "not a valid url", "http://", "file:///etc/hostname"]
)
async def test_malformed_urls_make_no_request(url: str, cache_dir: Path) -> None:
    assert await _issue_of(Url(url=url)) == DownloadUrlIsMalformed(model_path=url)
    assert not cache_dir.exists()


async def test_a_held_lock_is_reported(server: FakeServer, cache_dir: Path) -> None:
    url = f"{server.base_url}/model.gguf"
    final = _cached_path(cache_dir, url)
    final.parent.mkdir(parents=True)
    with open(final.with_name(final.name + ".lock"), "w") as other_holder:
        fcntl.flock(other_holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert await _issue_of(Url(url=url)) == CacheCannotAcquireLock(model_path=url)
    assert server.requests == []
    # Once the other holder lets go, the download proceeds.
    assert await resolve_model(Url(url=url)) == str(final)


async def test_a_cache_path_below_a_regular_file_is_a_corrupted_cache(
    server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # mkdir fails with ENOTDIR, which is "other IO" in the spec's mapping.
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("PADDLER_CACHE_DIR", str(tmp_path / "a-file" / "cache"))
    url = f"{server.base_url}/model.gguf"
    assert await _issue_of(Url(url=url)) == ModelCacheIsCorrupted(model_path=url)


async def test_read_only_cache_directory(server: FakeServer, cache_dir: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes through chmod 0o500; see the EACCES test below")
    models = cache_dir / "downloaded-models"
    models.mkdir(parents=True)
    models.chmod(0o500)
    try:
        url = f"{server.base_url}/model.gguf"
        assert await _issue_of(Url(url=url)) == CacheDirectoryIsNotWritable(model_path=url)
    finally:
        models.chmod(0o700)


async def test_eacces_while_writing_is_not_writable(server: FakeServer, cache_dir: Path) -> None:
    # A read-only sysfs attribute refuses writers with EACCES even for root.
    unwritable = Path("/sys/kernel/notes")
    try:
        with open(unwritable, "ab"):
            pass
    except PermissionError:
        pass
    except OSError:
        pytest.skip(f"{unwritable} is not available here")
    else:
        pytest.skip(f"{unwritable} is writable here")
    url = f"{server.base_url}/model.gguf"
    final = _cached_path(cache_dir, url)
    final.parent.mkdir(parents=True)
    final.with_name(final.name + ".partial").symlink_to(unwritable)
    assert await _issue_of(Url(url=url)) == CacheDirectoryIsNotWritable(model_path=url)


async def test_full_disk_is_storage_full(server: FakeServer, cache_dir: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    url = f"{server.base_url}/model.gguf"
    final = _cached_path(cache_dir, url)
    final.parent.mkdir(parents=True)
    final.with_name(final.name + ".partial").symlink_to("/dev/full")
    assert await _issue_of(Url(url=url)) == CacheStorageIsFull(model_path=url)
    assert not final.exists()


# --- LocalToAgent and None ---------------------------------------------------------------------


async def test_no_model_resolves_to_none() -> None:
    assert await resolve_model(NoModel()) is None


async def test_local_file(tmp_path: Path) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    assert await resolve_model(LocalToAgent(value=str(model))) == str(model)


async def test_missing_local_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.gguf")
    assert await _issue_of(LocalToAgent(value=missing)) == ModelFileDoesNotExist(model_path=missing)
    assert await _issue_of(
        LocalToAgent(value=missing), for_multimodal_projection=True
    ) == MultimodalProjectionCannotBeLoaded(model_path=missing)


# --- HuggingFace -------------------------------------------------------------------------------


@pytest.fixture
def hub(server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    """Point huggingface_hub at the fake server, with an empty cache and no retry sleeps."""
    from huggingface_hub import constants
    from huggingface_hub.utils import _http

    hf_home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_ENDPOINT", server.base_url)
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    # The hub reads these environment variables at import time; mirror them for this test.
    monkeypatch.setattr(constants, "ENDPOINT", server.base_url)
    monkeypatch.setattr(
        constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        server.base_url + "/{repo_id}/resolve/{revision}/{filename}",
    )
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    no_sleep = types.SimpleNamespace(**vars(time))
    no_sleep.sleep = lambda _seconds: None
    monkeypatch.setattr(_http, "time", no_sleep)
    return server


def _hf_source(test_name: str, filename: str = "hub-file.gguf") -> HuggingFace:
    # A repository per test keeps the module's per-source download jobs apart.
    return HuggingFace(repo_id=f"paddler/{test_name}", filename=filename, revision="main")


def _hf_url(source: HuggingFace) -> str:
    return f"/{source.repo_id}/resolve/{source.revision}/{source.filename}"


@pytest.mark.parametrize(
    ("status", "headers", "issue_type"),
    [
        (404, {}, HuggingFaceModelDoesNotExist),
        (404, {"X-Error-Code": "EntryNotFound"}, HuggingFaceModelDoesNotExist),
        (404, {"X-Error-Code": "RevisionNotFound"}, HuggingFaceModelDoesNotExist),
        (401, {"X-Error-Code": "RepoNotFound"}, HuggingFaceModelDoesNotExist),
        (401, {}, HuggingFacePermissions),
        (403, {}, HuggingFacePermissions),
        (403, {"X-Error-Code": "GatedRepo"}, HuggingFacePermissions),
        (500, {}, DownloadServerErrored),
    ],
)
async def test_huggingface_error_mapping(
    hub: FakeServer, status: int, headers: dict[str, str], issue_type: type[Any]
) -> None:
    source = _hf_source(f"status-{status}-{len(headers)}-{headers.get('X-Error-Code')}")
    hub.statuses[_hf_url(source)] = (status, headers)
    expected = issue_type(model_path=f"{source.repo_id}/hub-file.gguf@main")
    assert await _issue_of(source) == expected


async def test_huggingface_unreachable(hub: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    closed = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setattr(constants, "ENDPOINT", closed)
    monkeypatch.setattr(
        constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        closed + "/{repo_id}/resolve/{revision}/{filename}",
    )
    source = _hf_source("unreachable")
    expected = DownloadServerIsUnreachable(model_path=f"{source.repo_id}/hub-file.gguf@main")
    assert await _issue_of(source) == expected


async def test_huggingface_download_reports_progress(hub: FakeServer) -> None:
    source = _hf_source("download")
    progress: list[tuple[int, int | None, str]] = []
    path = await resolve_model(source, on_progress=lambda *args: progress.append(args))
    assert path is not None
    assert Path(path).read_bytes() == PAYLOAD
    assert progress[0] == (0, None, "hub-file.gguf")
    assert progress[-1] == (len(PAYLOAD), len(PAYLOAD), "hub-file.gguf")
    # Cached now: no further request.
    requests_before = len(hub.requests)
    assert await resolve_model(source) == path
    assert len(hub.requests) <= requests_before + 1  # at most a metadata HEAD


async def test_huggingface_lock_contention(
    hub: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from filelock import FileLock
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "FILELOCK_LOG_EVERY_SECONDS", 0.2)
    source = _hf_source("locked")
    lock_path = tmp_path / "hf-home" / "hub" / ".locks" / "models--paddler--locked" / f"{ETAG}.lock"
    lock_path.parent.mkdir(parents=True)
    other_holder = FileLock(str(lock_path))
    other_holder.acquire()
    try:
        issue = await _issue_of(source)
        assert issue == HuggingFaceCannotAcquireLock(
            lock_path=str(lock_path),
            model_path=ModelPath(model_path="paddler/locked/hub-file.gguf@main"),
        )
    finally:
        other_holder.release()
    # The waiting job takes the lock once it is free, and a new resolution picks up its result.
    path = await resolve_model(source)
    assert path is not None
    assert Path(path).read_bytes() == PAYLOAD


async def test_huggingface_invalid_repo_id_does_not_exist(hub: FakeServer) -> None:
    source = HuggingFace(repo_id="not/a/valid/repo", filename="x.gguf", revision="main")
    expected = HuggingFaceModelDoesNotExist(model_path="not/a/valid/repo/x.gguf@main")
    assert await _issue_of(source) == expected
    assert hub.requests == []


async def test_huggingface_cache_below_a_regular_file(
    hub: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    (tmp_path / "a-file").write_text("")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "a-file" / "hub"))
    source = _hf_source("cache-below-file")
    expected = ModelCacheIsCorrupted(model_path=f"{source.repo_id}/hub-file.gguf@main")
    assert await _issue_of(source) == expected
