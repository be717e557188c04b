"""The state file of a detached ``paddler-tui serve``: who runs, where, and whether it is ready."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from paddler_tui.paths import state_dir


def state_file() -> Path:
    return state_dir() / "serve.json"


@dataclass
class ServeState:
    pid: int
    inference_addr: str
    management_addr: str
    compat_openai_addr: str | None
    log_file: str
    # The agents running now: a restarted agent has a new pid.
    agent_pids: list[int] = field(default_factory=list)
    # Every agent has its slots, or was given up on (after a crash loop; ``gave_up`` says why).
    ready: bool = False
    gave_up: list[str] = field(default_factory=list)

    def write(self) -> None:
        path = state_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2))
        os.replace(temporary, path)

    @classmethod
    def read(cls) -> ServeState | None:
        """The recorded state, or None if there is none or it is unreadable."""
        try:
            return cls(**json.loads(state_file().read_text()))
        except (OSError, ValueError, TypeError):
            return None


def remove_state() -> None:
    with contextlib.suppress(FileNotFoundError):
        state_file().unlink()


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers signal 0; it is not running anything.
    with contextlib.suppress(OSError):
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return status != "Z"
    return True
