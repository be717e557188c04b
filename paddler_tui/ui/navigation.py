"""The app's screens as tabs: mode name, label, default key and the binding id to remap it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tab:
    mode: str
    label: str
    key: str
    binding_id: str


TABS: tuple[Tab, ...] = (
    Tab("chat", "Chat", "f2", "app.chat"),
    Tab("embeddings", "Embeddings", "f3", "app.embeddings"),
    Tab("monitor", "Monitor", "f4", "app.monitor"),
    Tab("cluster", "Cluster", "f5", "app.cluster"),
)
