"""The screens' logic stays importable without Textual, so it is tested (and reusable) alone."""

from __future__ import annotations

import subprocess
import sys

TEXTUAL_FREE = (
    "paddler_tui.client.apply_tracker",
    "paddler_tui.client.async_iteration",
    "paddler_tui.client.balancer_services",
    "paddler_tui.client.chat.answer",
    "paddler_tui.client.chat.conversation_store",
    "paddler_tui.client.chat.generation",
    "paddler_tui.client.chat.session",
    "paddler_tui.client.connection_state",
    "paddler_tui.client.embeddings.batch",
    "paddler_tui.client.embeddings.request",
    "paddler_tui.client.embeddings.results",
    "paddler_tui.client.embeddings.similarity",
    "paddler_tui.client.monitoring.extras",
    "paddler_tui.client.monitoring.feed",
    "paddler_tui.client.monitoring.history",
    "paddler_tui.client.monitoring.sse_fallback",
    "paddler_tui.ui.chat_export",
    "paddler_tui.ui.chat_text",
    "paddler_tui.ui.embedding_display",
    "paddler_tui.ui.model_source_text",
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
