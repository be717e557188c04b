"""Pieces shared by the model resolvers: the error type, progress throttling, cache-path rules."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import platformdirs

from paddler_tui.protocol.agent_issue import (
    AgentIssue,
    CacheDirectoryIsNotWritable,
    CacheStorageIsFull,
    ModelCacheIsCorrupted,
)

CACHE_DIR_ENV: Final = "PADDLER_CACHE_DIR"
DOWNLOADED_MODELS_DIR: Final = "downloaded-models"

ProgressCallback = Callable[[int, int | None, str], None]
"""``on_progress(current_bytes, total_bytes_or_None_if_unknown, filename)``."""

PROGRESS_INTERVAL_SECONDS: Final = 0.1


class ModelResolutionError(Exception):
    """A model source could not be turned into a local file; ``issue`` is what the agent reports."""

    def __init__(self, issue: AgentIssue) -> None:
        super().__init__(issue)
        self.issue = issue


def cache_root() -> Path:
    """``$PADDLER_CACHE_DIR``, else the platform's user cache directory for paddler-tui."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured)
    return Path(platformdirs.user_cache_dir("paddler-tui"))


def downloaded_models_dir() -> Path:
    return cache_root() / DOWNLOADED_MODELS_DIR


def cache_os_error_issue(error: OSError, model_path: str) -> AgentIssue:
    """Map a filesystem error in the cache to the issue Paddler reports for it."""
    # EPERM and EROFS are "not writable" for every practical purpose; Paddler names only EACCES.
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return CacheDirectoryIsNotWritable(model_path=model_path)
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return CacheStorageIsFull(model_path=model_path)
    return ModelCacheIsCorrupted(model_path=model_path)


class ProgressThrottle:
    """Forwards progress to a callback at most every ``interval`` seconds (plus forced updates)."""

    def __init__(
        self,
        callback: ProgressCallback | None,
        filename: str,
        interval: float = PROGRESS_INTERVAL_SECONDS,
    ) -> None:
        self._callback = callback
        self.filename = filename
        self._interval = interval
        self._last_emit: float | None = None

    def update(self, current: int, total: int | None, *, force: bool = False) -> None:
        if self._callback is None:
            return
        now = time.monotonic()
        if not force and self._last_emit is not None and now - self._last_emit < self._interval:
            return
        self._last_emit = now
        self._callback(current, total, self.filename)
