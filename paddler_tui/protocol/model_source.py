"""``AgentDesiredModel``: where an agent gets a GGUF file (model or multimodal projection)."""

from __future__ import annotations

from typing import Annotated

from paddler_tui.protocol.wire import ExternallyTagged, NewtypeVariant, StructVariant, UnitVariant


class HuggingFace(StructVariant):
    filename: str
    repo_id: str
    revision: str


class LocalToAgent(NewtypeVariant):
    value: str


class Url(StructVariant):
    url: str


class NoModel(UnitVariant):
    # Rust calls it ``None``, which Python reserves.
    TAG = "None"


AgentDesiredModel = Annotated[HuggingFace | LocalToAgent | Url | NoModel, ExternallyTagged()]
