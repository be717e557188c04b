"""The embedded default cluster: ``paddler-tui serve --detach`` started, and stopped on exit.

The services run as their own background session rather than inside the TUI, so llama.cpp never
shares the UI's process and ``paddler-tui status``/``stop`` work on them like on any detached
``serve``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass

from paddler_tui.api_key import API_KEY_ENV

STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class StartOutcome:
    ok: bool
    # What ``serve --detach`` printed: the addresses, or why it could not start.
    message: str


def _command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "paddler_tui", *arguments]


class EmbeddedCluster:
    def __init__(
        self, inference_addr: str, management_addr: str, *, api_key: str | None = None
    ) -> None:
        self.inference_addr = inference_addr
        self.management_addr = management_addr
        # The services require the TUI's key too; the environment keeps it out of ps.
        self._env = {**os.environ, API_KEY_ENV: api_key} if api_key else None
        # Set as soon as ``serve`` was launched: even a start cut short leaves something to stop.
        self.launched = False

    async def start(self) -> StartOutcome:
        """Run ``serve --detach``; it returns once the slots are ready, or fails."""
        self.launched = True
        process = await asyncio.create_subprocess_exec(
            *_command(
                "serve",
                "--detach",
                "--inference-addr",
                self.inference_addr,
                "--management-addr",
                self.management_addr,
            ),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self._env,
        )
        try:
            stdout, stderr = await process.communicate()
        except asyncio.CancelledError:
            if process.returncode is None:
                process.terminate()
                await process.wait()
            raise
        output = (stdout if process.returncode == 0 else stderr).decode(errors="replace").strip()
        return StartOutcome(process.returncode == 0, output)

    def stop(self) -> str:
        """Run ``paddler-tui stop`` if this session launched the services; what it printed."""
        if not self.launched:
            return ""
        try:
            result = subprocess.run(
                _command("stop"),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=STOP_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return f"`paddler-tui stop` did not finish within {STOP_TIMEOUT_S:.0f} s"
        self.launched = False
        return (result.stdout + result.stderr).strip()
