"""``serve --detach``'s state file, written as if this process were it (for ``status``)."""

from __future__ import annotations

import os

from paddler_tui.server.serve_state import ServeState
from tests.support.fake_balancer import FakeBalancer


def record(fake: FakeBalancer, gave_up: list[str] | None = None) -> None:
    ServeState(
        pid=os.getpid(),
        inference_addr=fake.inference_addr,
        management_addr=fake.management_addr,
        compat_openai_addr=None,
        log_file="serve.log",
        ready=True,
        gave_up=gave_up or [],
    ).write()
