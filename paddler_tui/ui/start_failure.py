"""Why the embedded cluster did not start, from the logs the start itself wrote.

``serve --detach`` only says that its background services exited; they said why in
``serve.log`` (``paddler-tui serve: agent-1 killed by SIGSEGV; see …/agent-1.log``), and a crashed
agent's last words (faulthandler's stacks, llama.cpp's messages) are at the end of its own log.
Logs are appended to across runs, so only what was written after :func:`log_sizes` counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SERVE_LOG = "serve.log"
SERVE_SAYS = "paddler-tui serve: "
LOG_TAIL_LINES = 20
# faulthandler's first line; what the process printed just before it matters most.
FATAL_ERROR = "Fatal Python error: "
LINES_BEFORE_FATAL_ERROR = 8
# Enough for any tail worth showing; a log that grew by more is read from this far before its end.
READ_LIMIT = 64 * 1024


@dataclass(frozen=True)
class StartFailure:
    reason: str
    # The log that best explains it (the crashed agent's, else serve's) and its last lines.
    log_path: Path | None = None
    log_tail: tuple[str, ...] = ()

    @property
    def headline(self) -> str:
        """The reason without its pointer to the log whose tail is shown beside it."""
        if self.log_tail and self.log_path is not None:
            return self.reason.removesuffix(f"; see {self.log_path}")
        return self.reason


def log_sizes(directory: Path) -> dict[Path, int]:
    """The size of every log in ``directory`` now: a start's own output comes after."""
    sizes: dict[Path, int] = {}
    for path in directory.glob("*.log"):
        try:
            sizes[path] = path.stat().st_size
        except OSError:
            continue
    return sizes


def appended_lines(path: Path, sizes: dict[Path, int]) -> list[str]:
    """The lines ``path`` gained since ``sizes`` was taken (all of it if it is new or shrank)."""
    try:
        with path.open("rb") as log:
            end = log.seek(0, 2)
            start = sizes.get(path, 0)
            if start > end:  # rotated or truncated meanwhile
                start = 0
            log.seek(max(start, end - READ_LIMIT))
            data = log.read()
    except OSError:
        return []
    return [line.rstrip() for line in data.decode("utf-8", errors="replace").splitlines()]


def start_failure(
    directory: Path, sizes: dict[Path, int], printed: str, exit_description: str
) -> StartFailure:
    """The reason and the log tail for a ``serve --detach`` that printed ``printed`` (its
    stderr) and ended as ``exit_description`` says (``exited with status 1``), given the log
    sizes from before it started."""
    serve_lines = appended_lines(directory / SERVE_LOG, sizes)
    said = [line.removeprefix(SERVE_SAYS) for line in serve_lines if line.startswith(SERVE_SAYS)]
    printed_lines = [line.strip() for line in printed.splitlines() if line.strip()]
    if said:
        reason = said[-1]
    elif printed_lines:
        reason = printed_lines[-1].removeprefix(SERVE_SAYS)
    else:
        reason = f"`paddler-tui serve --detach` {exit_description}"
    # The log the reason names (an agent's), else what serve itself wrote.
    named = sorted(path for path in directory.glob("*.log") if str(path) in reason)
    candidates = [(path, appended_lines(path, sizes)) for path in named]
    candidates.append((directory / SERVE_LOG, serve_lines))
    for path, lines in candidates:
        tail = _tail(lines)
        if tail:
            return StartFailure(reason, path, tail)
    return StartFailure(reason)


def _tail(lines: list[str]) -> tuple[str, ...]:
    """The last lines, except that a crash's dump (every thread's stack, the main thread's
    asyncio frames last) is shown from its head: what was printed before it, the error, and the
    innermost frames of the first thread."""
    while lines and not lines[-1]:
        lines = lines[:-1]
    fatal = [index for index, line in enumerate(lines) if line.startswith(FATAL_ERROR)]
    if fatal:
        start = max(0, fatal[-1] - LINES_BEFORE_FATAL_ERROR)
        return tuple(lines[start : start + LOG_TAIL_LINES])
    return tuple(lines[-LOG_TAIL_LINES:])
