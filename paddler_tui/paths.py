"""Where paddler-tui keeps its files; each directory can be moved with an environment variable.

``PADDLER_TUI_CONFIG_DIR``, ``PADDLER_TUI_DATA_DIR``, ``PADDLER_TUI_LOG_DIR``,
``PADDLER_TUI_STATE_DIR`` and ``PADDLER_TUI_CACHE_DIR`` override the platform's defaults (tests
use them to stay in a temp directory).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "paddler-tui"


def _directory(kind: str, default: str) -> Path:
    override = os.environ.get(f"PADDLER_TUI_{kind}_DIR")
    return Path(override) if override else Path(default)


def config_dir() -> Path:
    return _directory("CONFIG", platformdirs.user_config_dir(APP_NAME))


def data_dir() -> Path:
    return _directory("DATA", platformdirs.user_data_dir(APP_NAME))


def log_dir() -> Path:
    return _directory("LOG", platformdirs.user_log_dir(APP_NAME))


def state_dir() -> Path:
    return _directory("STATE", platformdirs.user_state_dir(APP_NAME))


def cache_dir() -> Path:
    return _directory("CACHE", platformdirs.user_cache_dir(APP_NAME))
