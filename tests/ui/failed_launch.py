"""An embedded start that fails as a crashed agent makes it fail, without starting anything."""

from __future__ import annotations

from pathlib import Path

from paddler_tui.ui.embedded import EmbeddedCluster, StartOutcome
from paddler_tui.ui.start_failure import StartFailure

AGENT_LOG = Path("/home/me/.local/state/paddler-tui/log/agent-1.log")
CRASH = StartFailure(
    reason=f"agent-1 killed by SIGSEGV; see {AGENT_LOG}",
    log_path=AGENT_LOG,
    log_tail=(
        "2026-01-01 12:00:01 INFO paddler_tui.server.agent.balancer_connection: connected",
        "llama_model_loader: loaded meta data with 33 key-value pairs and 272 tensors",
        "load_tensors: CPU_REPACK model buffer size =   102.38 MiB",
        "Fatal Python error: Segmentation fault",
        "",
        "Thread 0x00007f3a1c9ff6c0 (most recent call first):",
        '  File "/app/paddler_tui/server/agent/engine/model.py", line 88 in load',
        '  File "/usr/lib/python3.11/threading.py", line 975 in run',
        "",
        "Current thread 0x00007f3a2d1b8740 (most recent call first):",
        '  File "/usr/lib/python3.11/selectors.py", line 468 in select',
        '  File "/usr/lib/python3.11/asyncio/base_events.py", line 1898 in _run_once',
    ),
)


class FailedLaunch(EmbeddedCluster):
    """``serve --detach`` as it ends when its agent crashes: ``failure`` explains why."""

    def __init__(self, addr: str, failure: StartFailure = CRASH) -> None:
        super().__init__(addr, addr)
        self.failure = failure
        self.starts = 0

    async def start(self) -> StartOutcome:
        self.launched = True
        self.starts += 1
        return StartOutcome(
            False, "paddler-tui serve: the background services exited (1)", self.failure
        )
