"""``python -m paddler_tui`` is the ``paddler-tui`` command."""

from __future__ import annotations

from paddler_tui.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
