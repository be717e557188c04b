"""Turn an ``AgentDesiredModel`` into a local file path (spec §9.1).

``model_path`` in the reported issues is the source as the operator wrote it: the local path, the
URL, or ``<repo_id>/<filename>@<revision>`` for HuggingFace sources.

HuggingFace downloads go through ``huggingface_hub.hf_hub_download`` (standard HF cache, honours
``HF_HOME``/``HF_HUB_CACHE``/``HF_ENDPOINT``/``HF_TOKEN``) on a daemon thread. A thread cannot be
cancelled, so each (repo, file, revision) has at most one download job; a later resolution of the
same source re-attaches to a job still in flight instead of starting another one.

The hub client waits for its file lock forever, logging "Still waiting to acquire lock" every
``FILELOCK_LOG_EVERY_SECONDS`` (10 s). We watch for that message from our job's thread and report
``HuggingFaceCannotAcquireLock`` then, which mirrors Paddler's "wait 10 s, then error"; the job
keeps waiting and a later resolution picks it up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Final

from paddler_tui.protocol.agent_issue import (
    AgentIssue,
    DownloadInterrupted,
    DownloadServerErrored,
    DownloadServerIsUnreachable,
    DownloadServerRejectedRequest,
    HuggingFaceCannotAcquireLock,
    HuggingFaceModelDoesNotExist,
    HuggingFacePermissions,
    ModelFileDoesNotExist,
    ModelPath,
    MultimodalProjectionCannotBeLoaded,
)
from paddler_tui.protocol.model_source import (
    AgentDesiredModel,
    HuggingFace,
    LocalToAgent,
    NoModel,
    Url,
)
from paddler_tui.server.agent.models.cache import (
    ModelResolutionError,
    ProgressCallback,
    ProgressThrottle,
    cache_os_error_issue,
)
from paddler_tui.server.agent.models.download import download_url_model

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import TracebackType

__all__ = [
    "ModelResolutionError",
    "ProgressCallback",
    "huggingface_model_path",
    "resolve_model",
]

logger = logging.getLogger(__name__)

_JOB_POLL_SECONDS: Final = 0.1
_HF_ROOT_LOGGER: Final = "huggingface_hub"
_HF_LOCK_LOGGER: Final = "huggingface_hub.utils._fixes"
_LOCK_WAIT_MESSAGE: Final = re.compile(r"Still waiting to acquire lock on (?P<path>.+) \(elapsed: ")

# Exception class names (anywhere in the MRO) that mean "could not reach the server". Matching
# names keeps this independent of which HTTP stack the installed huggingface_hub uses (requests,
# httpx or httpx2 across its versions).
_UNREACHABLE_NAMES: Final = frozenset(
    {
        "ConnectError",
        "ConnectTimeout",
        "ProxyError",
        "OfflineModeIsEnabled",
        "ConnectionRefusedError",
    }
)
_TRANSPORT_NAMES: Final = frozenset(
    {"TransportError", "RequestException", "ConnectionError", "TimeoutError"}
)


def huggingface_model_path(source: HuggingFace) -> str:
    return f"{source.repo_id}/{source.filename}@{source.revision}"


async def resolve_model(
    source: AgentDesiredModel,
    *,
    on_progress: ProgressCallback | None = None,
    for_multimodal_projection: bool = False,
) -> str | None:
    """The local path of ``source`` (``None`` for no model), downloading it if needed.

    Raises :class:`ModelResolutionError`. A missing local file is ``ModelFileDoesNotExist``, or
    ``MultimodalProjectionCannotBeLoaded`` with ``for_multimodal_projection``.
    ``on_progress`` is called on the event loop, at most about 10 times a second; HuggingFace
    reports ``total=None`` until the hub has told the size.
    """
    if isinstance(source, NoModel):
        return None
    if isinstance(source, LocalToAgent):
        if await asyncio.to_thread(os.path.exists, source.value):
            return source.value
        issue: AgentIssue = (
            MultimodalProjectionCannotBeLoaded(model_path=source.value)
            if for_multimodal_projection
            else ModelFileDoesNotExist(model_path=source.value)
        )
        raise ModelResolutionError(issue)
    if isinstance(source, Url):
        return await download_url_model(source.url, on_progress=on_progress)
    return await _resolve_huggingface(source, on_progress)


# --- HuggingFace -------------------------------------------------------------------------------


@dataclass(eq=False)
class _HuggingFaceJob:
    source: HuggingFace
    future: concurrent.futures.Future[str] = field(default_factory=concurrent.futures.Future)
    waiting_for_lock: str | None = None
    # Re-pointed by every resolution that attaches, so progress reaches the current listener.
    loop: asyncio.AbstractEventLoop | None = None
    on_progress: ProgressCallback | None = None

    def report_progress(self, current: int, total: int | None, filename: str) -> None:
        """Called on the worker thread; hands the update to the listener's event loop."""
        loop, callback = self.loop, self.on_progress
        if loop is None or callback is None:
            return
        # The listener's loop may have closed since it attached.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(callback, current, total, filename)


_jobs_guard = threading.Lock()
_jobs: dict[tuple[str, str, str], _HuggingFaceJob] = {}
_jobs_by_thread: dict[int, _HuggingFaceJob] = {}


def _job_key(source: HuggingFace) -> tuple[str, str, str]:
    return source.repo_id, source.filename, source.revision


def _noop(*_args: Any, **_kwargs: Any) -> None:
    return None


class _ProgressBar:
    """Stands in for tqdm inside ``hf_hub_download``: forwards byte counts to the job's listener.

    huggingface_hub only instantiates it, uses it as a context manager and calls ``update``; other
    tqdm methods it might call in some version are accepted and ignored.
    """

    def __init__(
        self, *_args: Any, total: int | None = None, initial: int = 0, **_kwargs: Any
    ) -> None:
        self.n = initial
        self.total = total
        self._job = _jobs_by_thread.get(threading.get_ident())
        callback = self._job.report_progress if self._job is not None else None
        filename = self._job.source.filename if self._job is not None else ""
        self._throttle = ProgressThrottle(callback, filename)
        if self._job is not None:
            # Bars are only created once the download lock is held.
            self._job.waiting_for_lock = None
        self._throttle.update(self.n, self.total, force=True)

    def update(self, n: int | float = 1) -> None:
        self.n += int(n)
        if self._job is not None:
            self._job.waiting_for_lock = None
        self._throttle.update(self.n, self.total)

    def close(self) -> None:
        self._throttle.update(self.n, self.total, force=True)

    def __enter__(self) -> _ProgressBar:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __getattr__(self, name: str) -> Callable[..., None]:
        return _noop


class _LockWaitFilter(logging.Filter):
    """Spots the hub's "still waiting for the lock" message coming from one of our jobs."""

    def filter(self, record: logging.LogRecord) -> bool:
        job = _jobs_by_thread.get(record.thread) if record.thread is not None else None
        if job is not None:
            match = _LOCK_WAIT_MESSAGE.match(record.getMessage())
            if match is not None:
                job.waiting_for_lock = match.group("path")
        # We lowered this logger's level to see INFO; keep what the hub would have shown.
        return record.levelno >= logging.getLogger(_HF_ROOT_LOGGER).getEffectiveLevel()


@cache
def _install_lock_wait_filter() -> None:
    lock_logger = logging.getLogger(_HF_LOCK_LOGGER)
    lock_logger.addFilter(_LockWaitFilter())
    lock_logger.setLevel(logging.INFO)


@cache
def _hf_hub_download_accepts_tqdm_class() -> bool:
    from huggingface_hub import hf_hub_download

    return "tqdm_class" in inspect.signature(hf_hub_download).parameters


def _run_job(job: _HuggingFaceJob) -> None:
    from huggingface_hub import hf_hub_download

    thread_id = threading.get_ident()
    with _jobs_guard:
        _jobs_by_thread[thread_id] = job
    # Nobody may cancel the future under a running download; it always gets its outcome.
    job.future.set_running_or_notify_cancel()
    try:
        job.report_progress(0, None, job.source.filename)
        extra: dict[str, Any] = {}
        if _hf_hub_download_accepts_tqdm_class():
            extra["tqdm_class"] = _ProgressBar
        path = hf_hub_download(
            repo_id=job.source.repo_id,
            filename=job.source.filename,
            revision=job.source.revision,
            **extra,
        )
    except BaseException as error:
        job.future.set_exception(error)
    else:
        job.future.set_result(path)
    finally:
        with _jobs_guard:
            _jobs_by_thread.pop(thread_id, None)
            if _jobs.get(_job_key(job.source)) is job:
                del _jobs[_job_key(job.source)]


def _attach_job(
    source: HuggingFace, loop: asyncio.AbstractEventLoop, on_progress: ProgressCallback | None
) -> _HuggingFaceJob:
    with _jobs_guard:
        job = _jobs.get(_job_key(source))
        if job is None:
            job = _HuggingFaceJob(source)
            _jobs[_job_key(source)] = job
            start = True
        else:
            start = False
        job.loop, job.on_progress = loop, on_progress
        # Each resolution waits for a fresh "still waiting" report (one log interval) before it
        # gives up on a contended lock; a stale one may predate the lock's release.
        job.waiting_for_lock = None
    if start:
        thread = threading.Thread(
            target=_run_job, args=(job,), name=f"hf-download {source.repo_id}", daemon=True
        )
        thread.start()
    return job


async def _resolve_huggingface(source: HuggingFace, on_progress: ProgressCallback | None) -> str:
    _install_lock_wait_filter()
    model_path = huggingface_model_path(source)
    job = _attach_job(source, asyncio.get_running_loop(), on_progress)
    try:
        # Polling keeps the concurrent future out of asyncio's hands: cancelling this coroutine
        # must not try to cancel the download.
        while not job.future.done():
            if job.waiting_for_lock is not None:
                raise ModelResolutionError(
                    HuggingFaceCannotAcquireLock(
                        lock_path=job.waiting_for_lock, model_path=ModelPath(model_path=model_path)
                    )
                )
            await asyncio.sleep(_JOB_POLL_SECONDS)
    finally:
        if job.on_progress is on_progress:
            job.on_progress = None
    try:
        return job.future.result()
    except Exception as error:
        raise ModelResolutionError(huggingface_issue(error, model_path)) from error


def _exception_chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _has_class_named(error: BaseException, names: frozenset[str]) -> bool:
    return any(klass.__name__ in names for klass in type(error).__mro__)


def _status_issue(status_code: int, model_path: str) -> AgentIssue:
    if status_code == 404:
        return HuggingFaceModelDoesNotExist(model_path=model_path)
    if status_code in (401, 403):
        return HuggingFacePermissions(model_path=model_path)
    if 400 <= status_code < 500:
        return DownloadServerRejectedRequest(model_path=model_path)
    return DownloadServerErrored(model_path=model_path)


def _direct_issue(
    error: BaseException, model_path: str, *, before_download: bool
) -> AgentIssue | None:
    """The issue one exception of the chain stands for, if it is decisive on its own."""
    from filelock import Timeout as FileLockTimeout
    from huggingface_hub.errors import (
        DisabledRepoError,
        EntryNotFoundError,
        FileMetadataError,
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(error, ModelResolutionError):
        return error.issue
    if isinstance(error, (GatedRepoError, DisabledRepoError)):
        return HuggingFacePermissions(model_path=model_path)
    if isinstance(error, (RepositoryNotFoundError, RevisionNotFoundError, HFValidationError)):
        return HuggingFaceModelDoesNotExist(model_path=model_path)
    if isinstance(error, EntryNotFoundError) and not isinstance(error, LocalEntryNotFoundError):
        return HuggingFaceModelDoesNotExist(model_path=model_path)
    if isinstance(error, HfHubHTTPError) and error.response is not None:
        return _status_issue(error.response.status_code, model_path)
    if isinstance(error, FileLockTimeout):
        return HuggingFaceCannotAcquireLock(
            lock_path=str(error.lock_file), model_path=ModelPath(model_path=model_path)
        )
    if isinstance(error, FileMetadataError):
        # Something answered, but not like the hub (a wrong HF_ENDPOINT, a captive proxy).
        return DownloadServerErrored(model_path=model_path)
    if _has_class_named(error, _UNREACHABLE_NAMES):
        return DownloadServerIsUnreachable(model_path=model_path)
    if _has_class_named(error, _TRANSPORT_NAMES):
        # Failing to get file metadata means the hub was not reached; failing later, mid-body.
        return (
            DownloadServerIsUnreachable(model_path=model_path)
            if before_download
            else DownloadInterrupted(model_path=model_path)
        )
    if isinstance(error, OSError) and error.errno is not None:
        return cache_os_error_issue(error, model_path)
    return None


def huggingface_issue(error: BaseException, model_path: str) -> AgentIssue:
    """Map whatever ``hf_hub_download`` raised to the agent issue."""
    from huggingface_hub.errors import LocalEntryNotFoundError

    # The hub wraps failures of its metadata request in LocalEntryNotFoundError ("not cached
    # either"), chaining the real cause; look through the whole chain.
    before_download = isinstance(error, LocalEntryNotFoundError)
    for link in _exception_chain(error):
        issue = _direct_issue(link, model_path, before_download=before_download)
        if issue is not None:
            return issue
    if before_download:
        # Offline mode, or a cause the hub did not chain.
        return DownloadServerIsUnreachable(model_path=model_path)
    logger.warning("unexpected HuggingFace download failure for %s", model_path, exc_info=error)
    return DownloadInterrupted(model_path=model_path)
