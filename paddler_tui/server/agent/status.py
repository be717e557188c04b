"""The agent's own view of itself, reported to the balancer as a status snapshot."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from paddler_tui.protocol.agent_issue import AgentIssue, sorted_issues
from paddler_tui.protocol.agent_socket import ExtraBuffers, PromptCacheRam, UpdateAgentHost
from paddler_tui.protocol.agent_status import (
    AgentStateApplicationStatus,
    SlotAggregatedStatusSnapshot,
)


@dataclass
class _Fields:
    download_current: int = 0
    download_filename: str | None = None
    download_indeterminate: bool = True
    download_total: int = 0
    extra_buffers: ExtraBuffers | None = None  # reported apart from the Paddler snapshot
    issues: frozenset[AgentIssue] = frozenset()
    model_path: str | None = None
    slots_processing: int = 0
    slots_total: int = 0
    state_application_status: AgentStateApplicationStatus = "Fresh"
    uses_chat_template_override: bool = False


@dataclass
class AgentStatus:
    """Mutable status owned by the agent's event loop.

    Every change bumps ``version`` and wakes whoever waits in :meth:`wait_for_change`, so the
    connection can push an ``UpdateAgentStatus`` as soon as something moves.
    """

    desired_slots_total: int
    version: int = 0
    _fields: _Fields = field(default_factory=_Fields)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def update(self, **changes: Any) -> None:
        updated = dataclasses.replace(self._fields, **changes)
        if updated != self._fields:
            self._fields = updated
            self.version += 1
            self._changed.set()

    def add_issue(self, issue: AgentIssue) -> None:
        self.update(issues=self._fields.issues | {issue})

    def remove_issues(self, *kinds: type[Any]) -> None:
        """Clear every issue of the given variant classes (a "fix" event)."""
        self.update(issues=frozenset(i for i in self._fields.issues if not isinstance(i, kinds)))

    @property
    def issues(self) -> frozenset[AgentIssue]:
        return self._fields.issues

    @property
    def slots_processing(self) -> int:
        return self._fields.slots_processing

    @property
    def slots_total(self) -> int:
        return self._fields.slots_total

    @property
    def state_application_status(self) -> AgentStateApplicationStatus:
        return self._fields.state_application_status

    def host(self, *, prompt_cache_ram: PromptCacheRam | None) -> UpdateAgentHost:
        """The paddler-tui extension report, sent beside the Paddler snapshot.

        The prompt cache's use is passed in, not kept here: it changes on the compute thread,
        and a change of it alone must not bump the Paddler snapshot's version.
        """
        return UpdateAgentHost(
            extra_buffers=self._fields.extra_buffers, prompt_cache_ram=prompt_cache_ram
        )

    async def wait_for_change(self) -> None:
        await self._changed.wait()
        self._changed.clear()

    def snapshot(self) -> SlotAggregatedStatusSnapshot:
        current = self._fields
        return SlotAggregatedStatusSnapshot(
            desired_slots_total=self.desired_slots_total,
            download_current=current.download_current,
            download_filename=current.download_filename,
            download_indeterminate=current.download_indeterminate,
            download_total=current.download_total,
            issues=sorted_issues(current.issues),
            model_path=current.model_path,
            slots_processing=current.slots_processing,
            slots_total=current.slots_total,
            state_application_status=current.state_application_status,
            uses_chat_template_override=current.uses_chat_template_override,
            version=self.version,
        )
