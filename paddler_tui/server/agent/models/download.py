"""Resumable download of a ``Url`` model source into the paddler-tui cache (spec §9.1).

Layout under ``<cache root>/downloaded-models/``: the finished file is ``<sha256-hex(url)>``, data
in flight is ``<hash>.partial`` and ``<hash>.lock`` is held (``flock``) for the whole download so
two agents sharing a cache never write the same file. The hash is taken over the URL string
exactly as configured (no normalization), so ``http://h/m`` and ``http://h//m`` are cached apart.

Every failure is a :class:`ModelResolutionError` carrying the issue named in the spec, with the
URL as ``model_path``. Transport errors before the response headers arrive (refused connection,
DNS failure, a server that stalls past the read timeout) are ``DownloadServerIsUnreachable``;
after the headers they are ``DownloadInterrupted`` and the partial file is kept for resuming.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
from typing import TYPE_CHECKING, BinaryIO, Final
from urllib.parse import unquote

import httpx

from paddler_tui.protocol.agent_issue import (
    AgentIssue,
    CacheCannotAcquireLock,
    DownloadInterrupted,
    DownloadServerDeniedAccess,
    DownloadServerErrored,
    DownloadServerIsUnreachable,
    DownloadServerRejectedRequest,
    DownloadUrlIsMalformed,
    ModelDoesNotExistAtUrl,
)
from paddler_tui.server.agent.models.cache import (
    ModelResolutionError,
    ProgressCallback,
    ProgressThrottle,
    cache_os_error_issue,
    downloaded_models_dir,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

DOWNLOAD_TIMEOUT: Final = httpx.Timeout(10.0)
"""10 s to connect and 10 s between reads (write and pool limits are 10 s too)."""

_WRITE_BUFFER_SIZE: Final = 1 << 20
_CONTENT_RANGE: Final = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)


def url_cache_key(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def url_display_filename(url: str) -> str:
    """The last path segment of the URL, for progress reporting; the URL itself if there is none."""
    with contextlib.suppress(httpx.InvalidURL):
        segment = unquote(httpx.URL(url).path.rsplit("/", 1)[-1])
        if segment:
            return segment
    return url


def status_issue(status_code: int, url: str) -> AgentIssue:
    """The issue for a non-success HTTP status."""
    if status_code == 404:
        return ModelDoesNotExistAtUrl(model_path=url)
    if status_code in (401, 403):
        return DownloadServerDeniedAccess(model_path=url)
    if 400 <= status_code < 500:
        return DownloadServerRejectedRequest(model_path=url)
    # 5xx, and anything else that is neither success nor a followed redirect.
    return DownloadServerErrored(model_path=url)


def _validate_url(url: str) -> None:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        raise ModelResolutionError(DownloadUrlIsMalformed(model_path=url)) from error
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ModelResolutionError(DownloadUrlIsMalformed(model_path=url))


@contextlib.contextmanager
def _exclusive_lock(path: Path, url: str) -> Iterator[None]:
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise ModelResolutionError(CacheCannotAcquireLock(model_path=url)) from error
        yield
    finally:
        # Closing the descriptor releases the flock. The lock file stays: unlinking it would let a
        # waiter lock an orphaned inode while a newcomer locks a fresh file.
        os.close(descriptor)


class _RestartFromScratch(Exception):
    """The partial file is stale (416 or a mismatched Content-Range); it was deleted."""


class _UrlDownload:
    def __init__(self, url: str, on_progress: ProgressCallback | None, timeout: httpx.Timeout):
        self.url = url
        self.timeout = timeout
        self.progress = ProgressThrottle(on_progress, url_display_filename(url))
        key = url_cache_key(url)
        directory = downloaded_models_dir()
        self.directory = directory
        self.final_path = directory / key
        self.partial_path = directory / f"{key}.partial"
        self.lock_path = directory / f"{key}.lock"

    def _partial_size(self) -> int:
        try:
            return self.partial_path.stat().st_size
        except FileNotFoundError:
            return 0

    def _open_partial(self, *, append: bool) -> BinaryIO:
        # Opening is a quick local syscall; not worth a thread hop. The large buffer turns the
        # many small network chunks into few writes.
        return open(self.partial_path, "ab" if append else "wb", buffering=_WRITE_BUFFER_SIZE)

    def _discard_partial(self) -> None:
        self.partial_path.unlink(missing_ok=True)

    async def run(self) -> str:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            if self.final_path.is_file():
                return str(self.final_path)
            with _exclusive_lock(self.lock_path, self.url):
                # Another holder may have finished it while we waited for our turn.
                if not self.final_path.is_file():
                    await self._download()
        except OSError as error:
            raise ModelResolutionError(cache_os_error_issue(error, self.url)) from error
        return str(self.final_path)

    async def _download(self) -> None:
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=True) as client:
            try:
                await self._attempt(client)
            except _RestartFromScratch:
                try:
                    await self._attempt(client)
                except _RestartFromScratch as error:
                    # Without a Range header nothing can be stale: the server is confused.
                    issue = DownloadServerErrored(model_path=self.url)
                    raise ModelResolutionError(issue) from error
        total = self._partial_size()
        self.progress.update(total, total, force=True)
        os.replace(self.partial_path, self.final_path)

    async def _attempt(self, client: httpx.AsyncClient) -> None:
        offset = self._partial_size()
        # Byte offsets only line up with the stored file if nothing is content-encoded.
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        headers_received = False
        try:
            async with client.stream("GET", self.url, headers=headers) as response:
                headers_received = True
                await self._receive(response, offset)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as error:
            # Also reached when a redirect points somewhere unusable.
            raise ModelResolutionError(DownloadUrlIsMalformed(model_path=self.url)) from error
        except httpx.TransportError as error:
            issue: AgentIssue = (
                DownloadInterrupted(model_path=self.url)
                if headers_received
                else DownloadServerIsUnreachable(model_path=self.url)
            )
            raise ModelResolutionError(issue) from error
        except httpx.TooManyRedirects as error:
            raise ModelResolutionError(DownloadServerErrored(model_path=self.url)) from error

    async def _receive(self, response: httpx.Response, offset: int) -> None:
        status = response.status_code
        total: int | None
        if status == 206:
            content_range = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
            if content_range is None or int(content_range.group(1)) != offset:
                self._discard_partial()
                raise _RestartFromScratch
            total = None if content_range.group(3) == "*" else int(content_range.group(3))
        elif status == 416 and offset:
            self._discard_partial()
            raise _RestartFromScratch
        elif 200 <= status < 300:
            # A full body, possibly in answer to a Range request the server ignored.
            offset = 0
            total = None
        else:
            raise ModelResolutionError(status_issue(status, self.url))
        if total is None:
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length is not None and length.isdigit() else None

        current = offset
        self.progress.update(current, total, force=True)
        with self._open_partial(append=offset > 0) as partial:
            # No chunk size: whatever arrived is written, so an interruption loses nothing.
            async for chunk in response.aiter_bytes():
                partial.write(chunk)
                current += len(chunk)
                self.progress.update(current, total)
            partial.flush()
            os.fsync(partial.fileno())
        if total is not None and current != total:
            raise ModelResolutionError(DownloadInterrupted(model_path=self.url))


async def download_url_model(
    url: str,
    *,
    on_progress: ProgressCallback | None = None,
    http_timeout: httpx.Timeout = DOWNLOAD_TIMEOUT,
) -> str:
    """Return the local path of the file at ``url``, downloading (or resuming) it if needed."""
    _validate_url(url)
    return await _UrlDownload(url, on_progress, http_timeout).run()


__all__ = [
    "DOWNLOAD_TIMEOUT",
    "download_url_model",
    "status_issue",
    "url_cache_key",
    "url_display_filename",
]
