"""``AgentIssue``: the problems an agent reports in its status snapshot.

Rust keeps issues in a ``BTreeSet``, so they travel deduplicated and ordered by the derived ``Ord``:
variant declaration order (alphabetical) first, then the payload fields in declaration order.
"""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel

from paddler_tui.protocol.numbers import U32
from paddler_tui.protocol.wire import ExternallyTagged, StructVariant, WireModel

if TYPE_CHECKING:
    from collections.abc import Iterable


class ModelPath(WireModel):
    model_path: str


class CacheCannotAcquireLock(StructVariant):
    model_path: str


class CacheDirectoryIsNotWritable(StructVariant):
    model_path: str


class CacheStorageIsFull(StructVariant):
    model_path: str


class ChatTemplateDoesNotCompile(StructVariant):
    error: str
    model_path: ModelPath
    template_content: str


class DownloadInterrupted(StructVariant):
    model_path: str


class DownloadServerDeniedAccess(StructVariant):
    model_path: str


class DownloadServerErrored(StructVariant):
    model_path: str


class DownloadServerIsUnreachable(StructVariant):
    model_path: str


class DownloadServerRejectedRequest(StructVariant):
    model_path: str


class DownloadUrlIsMalformed(StructVariant):
    model_path: str


class HuggingFaceCannotAcquireLock(StructVariant):
    lock_path: str
    model_path: ModelPath


class HuggingFaceModelDoesNotExist(StructVariant):
    model_path: str


class HuggingFacePermissions(StructVariant):
    model_path: str


class ModelCacheIsCorrupted(StructVariant):
    model_path: str


class ModelCannotBeLoaded(StructVariant):
    model_path: str


class ModelDoesNotExistAtUrl(StructVariant):
    model_path: str


class ModelFileDoesNotExist(StructVariant):
    model_path: str


class MultimodalProjectionCannotBeLoaded(StructVariant):
    model_path: str


class SlotCannotStart(StructVariant):
    error: str
    slot_index: U32


class UnableToFindChatTemplate(StructVariant):
    model_path: str


# Members are listed in Rust declaration order; sorted_issues() relies on it.
AgentIssue = Annotated[
    CacheCannotAcquireLock
    | CacheDirectoryIsNotWritable
    | CacheStorageIsFull
    | ChatTemplateDoesNotCompile
    | DownloadInterrupted
    | DownloadServerDeniedAccess
    | DownloadServerErrored
    | DownloadServerIsUnreachable
    | DownloadServerRejectedRequest
    | DownloadUrlIsMalformed
    | HuggingFaceCannotAcquireLock
    | HuggingFaceModelDoesNotExist
    | HuggingFacePermissions
    | ModelCacheIsCorrupted
    | ModelCannotBeLoaded
    | ModelDoesNotExistAtUrl
    | ModelFileDoesNotExist
    | MultimodalProjectionCannotBeLoaded
    | SlotCannotStart
    | UnableToFindChatTemplate,
    ExternallyTagged(),
]

AGENT_ISSUE_VARIANTS: tuple[type[StructVariant], ...] = typing.get_args(
    typing.get_args(AgentIssue)[0]
)
_VARIANT_RANK = {variant: rank for rank, variant in enumerate(AGENT_ISSUE_VARIANTS)}


def _field_values(model: BaseModel) -> tuple[Any, ...]:
    # Derived Ord compares struct fields lexicographically in declaration order.
    return tuple(
        _field_values(value) if isinstance(value, BaseModel) else value
        for value in (getattr(model, name) for name in type(model).model_fields)
    )


def issue_sort_key(issue: AgentIssue) -> tuple[int, tuple[Any, ...]]:
    """The key that orders issues like Rust's derived ``Ord`` on ``AgentIssue``."""
    return _VARIANT_RANK[type(issue)], _field_values(issue)


def sorted_issues(issues: Iterable[AgentIssue]) -> list[AgentIssue]:
    """Issues as serde serializes a ``BTreeSet<AgentIssue>``: deduplicated and ordered."""
    return sorted(set(issues), key=issue_sort_key)
