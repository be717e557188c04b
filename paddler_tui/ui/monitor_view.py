"""What the monitor screen shows, derived from a :class:`MonitorUpdate` without Textual.

Times come from the balancer's clock: a request's age is ``server_now - last_item_at``, where
``server_now`` is the update's ``server_time`` advanced by however long ago it arrived, so ages
keep ticking between updates without trusting the two clocks to agree.
"""

from __future__ import annotations

import datetime
import os
from collections import deque
from dataclasses import dataclass
from typing import Literal

from paddler_tui.client.monitoring.prompt_cache import (
    agent_prompt_tokens,
    routed_total,
    share_label,
)
from paddler_tui.protocol.agent_issue import AgentIssue
from paddler_tui.protocol.monitor import (
    MonitorAgent,
    MonitorEvent,
    MonitorLocalAgent,
    MonitorRequest,
    MonitorUpdate,
)
from paddler_tui.ui.extra_buffers import UNKNOWN, repack_label
from paddler_tui.ui.supervision import LOCAL_ROW_PREFIX, restarts_label, state_label

Level = Literal["ok", "warning", "error"]

# A request's clock turns warning at half its timeout and error at four fifths of it.
WARNING_FRACTION = 0.5
ERROR_FRACTION = 0.8
SLOT_BAR_CELLS = 8

_AGENT_LOST_SEND = "Failed to generate response"
MODEL_NAME_WIDTH = 16  # the cluster table, repack column included, fits 80 columns up to issues
ISSUES_WIDTH = 24
_STATE_LABELS: dict[str, str] = {
    "Applied": "applied",
    "AttemptedAndNotAppliable": "not appliable",
    "AttemptedAndRetrying": "retrying",
    "Fresh": "loading",
    "Stuck": "stuck",
}
_EVENT_CODES: dict[str, str] = {
    "agent_lost": "502",
    "buffer_overflow": "503",
    "shutting_down": "503",
    "buffer_timeout": "504",
    "item_timeout": "504",
}
_EVENT_LABELS: dict[str, str] = {
    "agent_joined": "joined",
    "agent_left": "left",
    "request_completed": "done",
    "buffer_overflow": "overflow",
    "buffer_timeout": "buffer timeout",
    "item_timeout": "item timeout",
    "agent_lost": "agent lost",
    "client_cancelled": "cancelled",
    "shutting_down": "shutdown",
}


def clock_level(age_ms: int, limit_ms: int) -> Level:
    """How close an age is to its timeout; without a timeout it is always fine."""
    if limit_ms <= 0:
        return "ok"
    fraction = age_ms / limit_ms
    if fraction >= ERROR_FRACTION:
        return "error"
    if fraction >= WARNING_FRACTION:
        return "warning"
    return "ok"


def slot_bar(busy: int, total: int, cells: int = SLOT_BAR_CELLS) -> str:
    """``███░░░░░ 3/8``: one cell per slot up to ``cells``, proportional beyond."""
    if total <= 0:
        return f"{busy}/0"
    width = min(total, cells)
    filled = min(width, round(busy * width / total))
    if busy > 0 and filled == 0:
        filled = 1  # a busy slot must never look idle
    return f"{'█' * filled}{'░' * (width - filled)} {busy}/{total}"


def format_seconds(milliseconds: int) -> str:
    seconds = max(milliseconds, 0) / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def format_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return ""  # pragma: no cover - the loop always returns


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def model_name(path: str | None) -> str:
    if not path:
        return "—"
    return shorten(os.path.basename(path).removesuffix(".gguf"), MODEL_NAME_WIDTH)


def issue_summary(issues: list[AgentIssue]) -> str:
    if not issues:
        return ""
    more = f" +{len(issues) - 1}" if len(issues) > 1 else ""
    return shorten(issues[0].TAG, ISSUES_WIDTH - len(more)) + more


@dataclass(frozen=True)
class AgentRow:
    id: str
    name: str
    slots: str
    busy: int
    total: int
    model: str
    state: str
    repack: str
    download: str
    issues: str
    # How often serve restarted it (``—``: not a supervised local agent, or not known).
    restarts: str = UNKNOWN
    # The share of its prompt tokens a cache held, and how many of its requests were routed to it
    # for a prefix it held, of all routed to it (``62% · 12/20``); ``—`` before any request.
    cache: str = UNKNOWN


def cache_label(agent: MonitorAgent) -> str:
    routed = routed_total(agent.routed)
    tokens = agent_prompt_tokens(agent)
    if routed == 0 and tokens.prompt == 0:
        return UNKNOWN
    return f"{share_label(tokens)} · {agent.routed.prefix_hit}/{routed}"


def agent_row(agent: MonitorAgent, local: MonitorLocalAgent | None = None) -> AgentRow:
    """``local``: serve's supervision of the agent of that name, where the monitor has it."""
    if agent.download_total > 0:
        percent = 100 * agent.download_current / agent.download_total
        download = f"{percent:.0f}% {format_bytes(agent.download_total)}"
    elif agent.download_filename:
        download = f"{format_bytes(agent.download_current)}…"
    else:
        download = ""
    return AgentRow(
        id=agent.id,
        name=agent.name or agent.id,
        slots=slot_bar(agent.slots_busy, agent.slots_total),
        busy=agent.slots_busy,
        total=agent.slots_total,
        model=model_name(agent.model_path),
        state=_STATE_LABELS[agent.state_application_status],
        repack=repack_label(agent.extra_buffers),
        download=download,
        issues=issue_summary(agent.issues),
        restarts=restarts_label(local),
        cache=cache_label(agent),
    )


def restarts_style(restarts: str, warning: str) -> str:
    """A restarted agent is worth a look; none, or unknown, is not."""
    return warning if restarts not in ("0", UNKNOWN) else ""


def local_agent_row(local: MonitorLocalAgent) -> AgentRow:
    """The row of a local agent that is not registered now: down, or on its way up."""
    return AgentRow(
        id=LOCAL_ROW_PREFIX + local.name,
        name=local.name,
        slots=UNKNOWN,
        busy=0,
        total=0,
        model=UNKNOWN,
        state=state_label(local),
        repack=UNKNOWN,
        download="",
        issues="",
        restarts=restarts_label(local),
    )


@dataclass(frozen=True)
class RequestRow:
    id: str
    kind: str
    phase: str
    agent: str
    tokens: int
    clock: str
    level: Level


def request_row(request: MonitorRequest, update: MonitorUpdate, server_now: int) -> RequestRow:
    """A buffered request races the buffer timeout from its start; a running one races the
    item timeout from its last token."""
    if request.phase == "buffered":
        age, limit = server_now - request.started_at, update.timeouts.buffered_request_timeout_ms
    else:
        age, limit = server_now - request.last_item_at, update.timeouts.inference_item_timeout_ms
    clock = format_seconds(age) + (f" / {format_seconds(limit)}" if limit > 0 else "")
    return RequestRow(
        id=request.id,
        kind=request.kind,
        phase=request.phase,
        agent=request.agent_name or request.agent_id or "—",
        tokens=request.tokens,
        clock=clock,
        level=clock_level(age, limit),
    )


@dataclass(frozen=True)
class BufferGauge:
    buffered: int
    limit: int
    text: str
    level: Level


def buffer_gauge(update: MonitorUpdate) -> BufferGauge:
    buffer = update.buffer
    if buffer.max_buffered <= 0 and buffer.timeout_ms <= 0:
        # The SSE fallback knows the count only.
        return BufferGauge(buffer.buffered, 0, f"buffered {buffer.buffered}", "ok")
    level = clock_level(buffer.buffered, buffer.max_buffered) if buffer.max_buffered else "ok"
    return BufferGauge(
        buffer.buffered,
        buffer.max_buffered,
        f"buffered {buffer.buffered}/{buffer.max_buffered} · timeout "
        f"{format_seconds(buffer.timeout_ms)}",
        level,
    )


@dataclass(frozen=True)
class EventLine:
    time: str
    code: str
    label: str
    text: str
    level: Level


def event_time(at_ms: int) -> str:
    return datetime.datetime.fromtimestamp(at_ms / 1000).strftime("%H:%M:%S")


def event_line(event: MonitorEvent) -> EventLine:
    code = _EVENT_CODES.get(event.kind, "")
    if event.kind == "agent_lost" and event.message == _AGENT_LOST_SEND:
        code = "500"
    who = event.agent_name or event.agent_id
    text = event.message
    if event.kind == "request_completed" and event.usage is not None:
        rate = f", {event.tokens_per_second:.1f} tok/s" if event.tokens_per_second else ""
        text = f"{text}: {event.usage.completion_tokens} tokens{rate}"
    if who and event.kind not in ("agent_joined", "agent_left"):
        text = f"{who}: {text}"
    level: Level = "error" if code else "warning" if event.kind == "client_cancelled" else "ok"
    return EventLine(event_time(event.at), code, _EVENT_LABELS[event.kind], text, level)


class SeenEvents:
    """Which events were already shown: a new subscription starts with the balancer's recent
    history, which after a reconnection to the same balancer repeats what is on screen."""

    def __init__(self, remembered: int = 1000) -> None:
        self._order: deque[tuple[object, ...]] = deque()
        self._keys: set[tuple[object, ...]] = set()
        self._remembered = remembered

    def fresh(self, events: list[MonitorEvent]) -> list[MonitorEvent]:
        """The events of ``events`` not seen before, now remembered."""
        new: list[MonitorEvent] = []
        for event in events:
            key = (event.at, event.kind, event.message, event.request_id, event.agent_id)
            if key in self._keys:
                continue
            new.append(event)
            self._keys.add(key)
            self._order.append(key)
            if len(self._order) > self._remembered:
                self._keys.discard(self._order.popleft())
        return new
