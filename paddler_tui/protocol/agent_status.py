"""Agent status snapshots (agent → balancer, and the balancer's management API views)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, field_serializer

from paddler_tui.protocol.agent_issue import AgentIssue, sorted_issues
from paddler_tui.protocol.numbers import I32, U64
from paddler_tui.protocol.wire import LenientWireModel, WireModel

AgentStateApplicationStatus = Literal[
    "Applied", "AttemptedAndNotAppliable", "AttemptedAndRetrying", "Fresh", "Stuck"
]

# The integer codes Paddler uses internally (e.g. in atomics), by status.
AGENT_STATE_APPLICATION_STATUS_CODES: dict[AgentStateApplicationStatus, int] = {
    "Applied": 0,
    "AttemptedAndNotAppliable": 1,
    "AttemptedAndRetrying": 2,
    "Fresh": 3,
    "Stuck": 4,
}

# A BTreeSet in Rust: kept deduplicated and ordered so equality and output match serde.
IssueSet = Annotated[list[AgentIssue], AfterValidator(sorted_issues)]


class SlotAggregatedStatusSnapshot(WireModel):
    desired_slots_total: I32
    download_current: U64
    download_filename: str | None = None
    download_indeterminate: bool
    download_total: U64
    issues: IssueSet
    model_path: str | None = None
    slots_processing: I32
    slots_total: I32
    state_application_status: AgentStateApplicationStatus
    uses_chat_template_override: bool
    version: I32


class AgentControllerSnapshot(WireModel):
    """The balancer's view of one agent; Rust declares the keys alphabetically."""

    desired_slots_total: I32
    download_current: U64
    download_filename: str | None = None
    download_indeterminate: bool
    download_total: U64
    id: str
    issues: IssueSet
    model_path: str | None = None
    name: str | None = None
    slots_processing: I32
    slots_total: I32
    state_application_status: AgentStateApplicationStatus
    uses_chat_template_override: bool


class AgentControllerPoolSnapshot(WireModel):
    agents: list[AgentControllerSnapshot]


class ModelMetadata(WireModel):
    """All GGUF metadata as strings; a BTreeMap in Rust, so keys go out sorted."""

    metadata: dict[str, str]

    @field_serializer("metadata")
    def _sorted(self, metadata: dict[str, str]) -> dict[str, str]:
        return dict(sorted(metadata.items()))


class BufferedRequestsSnapshot(LenientWireModel):
    # The only snapshot without deny_unknown_fields in Paddler.
    buffered_requests_current: I32
