"""The TUI's TOML config: theme, keymap, chat defaults.

The file lives at ``config.toml`` in the config directory (``paddler-tui --print-paths``). Every
key is optional and unknown keys are errors, so a typo is reported instead of silently ignored::

    theme = "nord"
    cursor_blink = true
    export_dir = "~/Documents/chats"
    inference_addr = "127.0.0.1:8061"     # used when no --inference-addr is given
    management_addr = "127.0.0.1:8060"    # used when no --management-addr is given

    [keymap]                      # binding id = keys; the help screen (F1) lists the ids
    "chat.regenerate" = "ctrl+r,f9"

    [chat]                        # settings of new conversations
    system_prompt = ""
    max_tokens = 1024
    enable_thinking = false
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from paddler_tui.net_address import HostPort
from paddler_tui.paths import config_dir

CONFIG_FILENAME = "config.toml"

# A top-level ``theme = ...`` line; anything after the first table header belongs to a table.
_THEME_LINE = re.compile(r"^\s*theme\s*=.*$")
_TABLE_HEADER = re.compile(r"^\s*\[")


class ConfigError(Exception):
    """The config file exists but cannot be used; the message says where and why."""


def _host_port(value: str) -> str:
    return str(HostPort.parse(value))


Address = Annotated[str, AfterValidator(_host_port)]


class ChatDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    system_prompt: str = ""
    max_tokens: int = Field(default=1024, ge=1, le=2**31 - 1)
    enable_thinking: bool = False


class TuiConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    theme: str | None = None
    cursor_blink: bool = True
    export_dir: Path | None = None
    # Where the balancer is when no address is given on the command line.
    inference_addr: Address | None = None
    management_addr: Address | None = None
    keymap: dict[str, str] = Field(default_factory=dict)
    chat: ChatDefaults = Field(default_factory=ChatDefaults)

    def resolved_export_dir(self) -> Path:
        """Where exports go: the configured directory, else the current one."""
        return self.export_dir.expanduser() if self.export_dir is not None else Path.cwd()


def config_path() -> Path:
    return config_dir() / CONFIG_FILENAME


def load_config(path: Path) -> TuiConfig:
    """The config at ``path``, defaults if there is no file; :class:`ConfigError` if unusable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return TuiConfig()
    except OSError as error:
        raise ConfigError(f"{path}: {error.strerror or error}") from error
    try:
        return TuiConfig.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: {error}") from error
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or '<root>'}: {item['msg']}"
            for item in error.errors(include_url=False)
        )
        raise ConfigError(f"{path}: {problems}") from error


def save_theme(path: Path, theme: str) -> None:
    """Record the theme chosen in the app, keeping the rest of the file (and its comments)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = []
    # A JSON string is a valid TOML basic string.
    setting = f"theme = {json.dumps(theme)}"
    top_level = next(
        (index for index, line in enumerate(lines) if _TABLE_HEADER.match(line)), len(lines)
    )
    existing = next((index for index in range(top_level) if _THEME_LINE.match(lines[index])), None)
    if existing is None:
        lines.insert(0, setting)
    else:
        lines[existing] = setting
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(temporary, path)
