"""Only the engine modules load llama.cpp; the asyncio side of the agent stays free of it."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    ["balancer_connection", "running_requests", "state_applier", "main"],
)
def test_the_asyncio_side_does_not_load_llama_cpp(module: str) -> None:
    probe = (
        "import importlib, sys\n"
        f"importlib.import_module('paddler_tui.server.agent.{module}')\n"
        "print('llama_cpp' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
