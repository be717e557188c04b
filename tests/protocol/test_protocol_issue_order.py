"""AgentIssue sets go out as serde serializes a BTreeSet: deduplicated and ordered by Ord."""

from __future__ import annotations

import orjson

from paddler_tui.protocol import codec
from paddler_tui.protocol.agent_issue import (
    AGENT_ISSUE_VARIANTS,
    AgentIssue,
    CacheCannotAcquireLock,
    ChatTemplateDoesNotCompile,
    HuggingFaceCannotAcquireLock,
    ModelCannotBeLoaded,
    ModelFileDoesNotExist,
    ModelPath,
    SlotCannotStart,
    UnableToFindChatTemplate,
    sorted_issues,
)
from paddler_tui.protocol.agent_status import SlotAggregatedStatusSnapshot


def test_variants_are_declared_alphabetically() -> None:
    tags = [variant.TAG for variant in AGENT_ISSUE_VARIANTS]
    assert tags == sorted(tags)
    assert len(tags) == 20


def test_variant_order_comes_first_then_fields() -> None:
    issues: list[AgentIssue] = [
        UnableToFindChatTemplate(model_path="a"),
        SlotCannotStart(error="b", slot_index=10),
        SlotCannotStart(error="b", slot_index=2),
        SlotCannotStart(error="a", slot_index=99),
        ModelFileDoesNotExist(model_path="b"),
        ModelFileDoesNotExist(model_path="B"),
        ModelCannotBeLoaded(model_path="z"),
        HuggingFaceCannotAcquireLock(lock_path="l", model_path=ModelPath(model_path="b")),
        HuggingFaceCannotAcquireLock(lock_path="l", model_path=ModelPath(model_path="a")),
        ChatTemplateDoesNotCompile(
            error="e", model_path=ModelPath(model_path="m"), template_content="t2"
        ),
        ChatTemplateDoesNotCompile(
            error="e", model_path=ModelPath(model_path="m"), template_content="t1"
        ),
        CacheCannotAcquireLock(model_path="x"),
    ]
    assert sorted_issues(issues) == [
        CacheCannotAcquireLock(model_path="x"),
        ChatTemplateDoesNotCompile(
            error="e", model_path=ModelPath(model_path="m"), template_content="t1"
        ),
        ChatTemplateDoesNotCompile(
            error="e", model_path=ModelPath(model_path="m"), template_content="t2"
        ),
        HuggingFaceCannotAcquireLock(lock_path="l", model_path=ModelPath(model_path="a")),
        HuggingFaceCannotAcquireLock(lock_path="l", model_path=ModelPath(model_path="b")),
        ModelCannotBeLoaded(model_path="z"),
        # Strings compare by UTF-8 bytes, so upper case sorts first.
        ModelFileDoesNotExist(model_path="B"),
        ModelFileDoesNotExist(model_path="b"),
        SlotCannotStart(error="a", slot_index=99),
        # Integers compare numerically, not as text.
        SlotCannotStart(error="b", slot_index=2),
        SlotCannotStart(error="b", slot_index=10),
        UnableToFindChatTemplate(model_path="a"),
    ]


def test_duplicates_collapse() -> None:
    issue = ModelFileDoesNotExist(model_path="/m.gguf")
    assert sorted_issues([issue, ModelFileDoesNotExist(model_path="/m.gguf"), issue]) == [issue]


def test_snapshot_issues_are_canonical_on_decode_and_encode() -> None:
    adapter = codec.adapter_for(SlotAggregatedStatusSnapshot)
    snapshot = SlotAggregatedStatusSnapshot(
        desired_slots_total=2,
        download_current=0,
        download_indeterminate=True,
        download_total=0,
        issues=[
            UnableToFindChatTemplate(model_path="m"),
            CacheCannotAcquireLock(model_path="m"),
            CacheCannotAcquireLock(model_path="m"),
        ],
        slots_processing=0,
        slots_total=0,
        state_application_status="Fresh",
        uses_chat_template_override=False,
        version=1,
    )
    issues = orjson.loads(codec.encode(adapter, snapshot))["issues"]
    assert issues == [
        {"CacheCannotAcquireLock": {"model_path": "m"}},
        {"UnableToFindChatTemplate": {"model_path": "m"}},
    ]
    assert codec.decode(adapter, codec.encode(adapter, snapshot)) == snapshot


def test_issues_are_hashable() -> None:
    issue = HuggingFaceCannotAcquireLock(lock_path="l", model_path=ModelPath(model_path="m"))
    assert issue in {issue}
