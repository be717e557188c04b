"""The screens' logic stays importable without Textual, so it is tested (and reusable) alone."""

from __future__ import annotations

import subprocess
import sys

TEXTUAL_FREE = (
    "paddler_tui.ui.async_iteration",
    "paddler_tui.ui.cluster_apply",
    "paddler_tui.ui.embedding_math",
    "paddler_tui.ui.embedding_request",
    "paddler_tui.ui.embedding_results",
    "paddler_tui.ui.embedding_run",
    "paddler_tui.ui.model_source_text",
    "paddler_tui.ui.monitor_fallback",
    "paddler_tui.ui.monitor_feed",
    "paddler_tui.ui.monitor_history",
    "paddler_tui.ui.monitor_view",
    "paddler_tui.ui.parameter_form",
)


def test_the_screens_logic_does_not_import_textual() -> None:
    probe = (
        "import importlib, sys\n"
        f"for name in {TEXTUAL_FREE!r}:\n"
        "    importlib.import_module(name)\n"
        "print('textual' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
