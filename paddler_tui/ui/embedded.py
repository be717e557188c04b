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
from collections.abc import Sequence
from dataclasses import dataclass

from paddler_tui.api_key import API_KEY_ENV
from paddler_tui.paths import log_dir
from paddler_tui.server.process_exit import describe_exit
from paddler_tui.server.serve_state import ServeState
from paddler_tui.ui.start_failure import StartFailure, log_sizes, start_failure

STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class StartOutcome:
    ok: bool
    # What ``serve --detach`` printed: the addresses, or why it could not start.
    message: str
    # After a failure: the cause the services logged and the end of the log that explains it.
    failure: StartFailure | None = None


def _command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "paddler_tui", *arguments]


class EmbeddedCluster:
    def __init__(
        self,
        inference_addr: str,
        management_addr: str,
        *,
        api_key: str | None = None,
        serve_arguments: Sequence[str] = (),
    ) -> None:
        """``serve_arguments`` are added to ``serve --detach``'s own (e.g. ``--model``)."""
        self.inference_addr = inference_addr
        self.management_addr = management_addr
        self._serve_arguments = tuple(serve_arguments)
        # The services require the TUI's key too; the environment keeps it out of ps.
        self._env = {**os.environ, API_KEY_ENV: api_key} if api_key else None
        # Set as soon as ``serve`` was launched: even a start cut short leaves something to stop.
        self.launched = False

    async def start(self) -> StartOutcome:
        """Run ``serve --detach``; it returns once the slots are ready, or fails (which
        includes an agent given up on after a crash loop)."""
        self.launched = True
        logs = log_dir()
        sizes = await asyncio.to_thread(log_sizes, logs)
        process = await asyncio.create_subprocess_exec(
            *_command(
                "serve",
                "--detach",
                "--inference-addr",
                self.inference_addr,
                "--management-addr",
                self.management_addr,
                *self._serve_arguments,
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
        returncode = process.returncode
        assert returncode is not None
        printed = stderr.decode(errors="replace").strip()
        if returncode == 0:
            state = await asyncio.to_thread(ServeState.read)
            if state is None or not state.gave_up:
                return StartOutcome(True, stdout.decode(errors="replace").strip())
            # Up, but an agent crash-looped: with the one agent of the default that serves
            # nothing. Stopped, so that a retry starts afresh as after any failed start.
            await asyncio.to_thread(self.stop)
        failure = await asyncio.to_thread(
            start_failure, logs, sizes, printed, describe_exit(returncode)
        )
        return StartOutcome(False, printed, failure)

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
