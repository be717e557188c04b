"""Why the embedded start failed, read from the logs that start wrote (and only those)."""

from __future__ import annotations

from pathlib import Path

from paddler_tui.server.process_exit import describe_exit
from paddler_tui.ui.start_failure import LOG_TAIL_LINES, StartFailure, log_sizes, start_failure

DETACH_SAYS = "paddler-tui serve: the background services exited (1); see {log}"
FAULT = [
    "Fatal Python error: Segmentation fault",
    "",
    "Thread 0x00007f0000000000 (most recent call first):",
    '  File "/app/engine.py", line 120 in load',
]


def write(path: Path, *lines: str) -> None:
    with path.open("a") as log:
        log.writelines(f"{line}\n" for line in lines)


def test_a_crashed_agent_gives_its_signal_and_its_own_log(tmp_path: Path) -> None:
    agent_log, serve_log = tmp_path / "agent-1.log", tmp_path / "serve.log"
    write(agent_log, "an older run's last words")
    write(serve_log, "paddler-tui serve: an older run's reason")
    sizes = log_sizes(tmp_path)
    write(agent_log, *(f"loading {index}" for index in range(30)), *FAULT, "")
    write(agent_log, *(f'  File "asyncio.py", line {index}' for index in range(30)))
    reason = f"agent-1 killed by SIGSEGV; see {agent_log}"
    write(serve_log, "INFO: started", f"paddler-tui serve: {reason}")

    failure = start_failure(tmp_path, sizes, DETACH_SAYS.format(log=serve_log), describe_exit(1))

    assert failure.reason == reason
    assert failure.headline == "agent-1 killed by SIGSEGV"  # the log is shown under it
    assert failure.log_path == agent_log
    # From just before the dump, not the main thread's asyncio frames at its end.
    assert len(failure.log_tail) == LOG_TAIL_LINES
    assert failure.log_tail[:12] == (*(f"loading {index}" for index in range(22, 30)), *FAULT)
    assert "an older run's last words" not in failure.log_tail


def test_a_plain_log_gives_its_last_lines(tmp_path: Path) -> None:
    agent_log = tmp_path / "agent-2.log"
    write(agent_log, *(f"line {index}" for index in range(50)), "", "")
    reason = f"agent-2 exited with status 1; see {agent_log}"
    write(tmp_path / "serve.log", f"paddler-tui serve: {reason}")

    failure = start_failure(tmp_path, {}, "", describe_exit(1))

    assert failure.log_path == agent_log
    assert failure.log_tail == tuple(f"line {index}" for index in range(30, 50))


def test_without_an_agent_to_blame_serve_log_tells(tmp_path: Path) -> None:
    serve_log = tmp_path / "serve.log"
    write(tmp_path / "agent-1.log", "a healthy agent")
    sizes = log_sizes(tmp_path)
    write(serve_log, "Traceback (most recent call last):", "RuntimeError: boom")

    failure = start_failure(tmp_path, sizes, DETACH_SAYS.format(log=serve_log), describe_exit(1))

    assert failure.reason == f"the background services exited (1); see {serve_log}"
    assert failure.log_path == serve_log
    assert failure.log_tail == ("Traceback (most recent call last):", "RuntimeError: boom")


def test_nothing_printed_and_nothing_logged_still_says_how_it_ended(tmp_path: Path) -> None:
    failure = start_failure(tmp_path, log_sizes(tmp_path), "", describe_exit(-9))
    assert failure == StartFailure("`paddler-tui serve --detach` killed by SIGKILL")


def test_a_log_rotated_meanwhile_is_read_from_its_start(tmp_path: Path) -> None:
    serve_log = tmp_path / "serve.log"
    write(serve_log, *(f"old {index}" for index in range(100)))
    sizes = log_sizes(tmp_path)
    serve_log.write_text("paddler-tui serve: Unable to bind inference service to 127.0.0.1:8061\n")

    failure = start_failure(tmp_path, sizes, "", describe_exit(1))

    assert failure.reason == "Unable to bind inference service to 127.0.0.1:8061"
    assert failure.log_tail == (
        "paddler-tui serve: Unable to bind inference service to 127.0.0.1:8061",
    )
