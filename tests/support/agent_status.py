"""The status snapshot a fake agent reports: a model applied and every slot free, unless told."""

from __future__ import annotations

from paddler_tui.protocol.agent_status import SlotAggregatedStatusSnapshot


def status(
    *, slots_total: int, version: int = 0, **changes: object
) -> SlotAggregatedStatusSnapshot:
    fields: dict[str, object] = {
        "desired_slots_total": slots_total,
        "download_current": 0,
        "download_filename": None,
        "download_indeterminate": False,
        "download_total": 0,
        "issues": [],
        "model_path": "/models/m.gguf",
        "slots_processing": 0,
        "slots_total": slots_total,
        "state_application_status": "Applied",
        "uses_chat_template_override": False,
        "version": version,
    }
    fields.update(changes)
    return SlotAggregatedStatusSnapshot.model_validate(fields)
