"""Keep every test's paddler-tui cache (extra-buffers verdicts) out of the user's own."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def _session_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # One directory for the whole run: the real extra-buffers probe runs once, for the first
    # agent, and later agents (subprocesses inherit the environment) reuse its verdict.
    previous = os.environ.get("PADDLER_TUI_CACHE_DIR")
    os.environ["PADDLER_TUI_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if previous is None:
        del os.environ["PADDLER_TUI_CACHE_DIR"]
    else:
        os.environ["PADDLER_TUI_CACHE_DIR"] = previous
