"""``paddler-tui`` with no subcommand, up to where the terminal UI takes over."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "paddler_tui", *arguments],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def isolated(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    for kind in ("CONFIG", "DATA", "LOG", "STATE"):
        env[f"PADDLER_TUI_{kind}_DIR"] = str(tmp_path / kind.lower())
    return env


def test_print_paths(tmp_path: Path) -> None:
    result = run(isolated(tmp_path), "--print-paths")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"config: {tmp_path / 'config' / 'config.toml'}",
        f"data:   {tmp_path / 'data' / 'conversations.db'}",
        f"log:    {tmp_path / 'log'}",
        f"state:  {tmp_path / 'state'}",
    ]


def test_a_broken_config_is_reported_not_raised(tmp_path: Path) -> None:
    env = isolated(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.toml").write_text("[chat]\nmax_tokens = 'many'\n")
    result = run(env, "--inference-addr", "127.0.0.1:1", "--management-addr", "127.0.0.1:1")
    assert result.returncode == 2
    assert result.stderr.startswith(f"paddler-tui: {tmp_path / 'config' / 'config.toml'}: ")
    assert "chat.max_tokens" in result.stderr
    assert "Traceback" not in result.stderr
