"""Saying in words how a child process ended, for logs and for operators."""

from __future__ import annotations

import signal


def describe_exit(returncode: int) -> str:
    """``exited with status 1``, or ``killed by SIGSEGV`` for a negative (signal) code."""
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"killed by {name}"


def last_lines(text: str, count: int) -> str:
    """The last ``count`` non-empty lines of ``text``."""
    lines = [line for line in text.splitlines() if line.strip()]
    return "\n".join(lines[-count:])
