"""Conversation messages of the native API; content parts are tagged by a ``"type"`` key."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from paddler_tui.protocol.wire import WireModel


class ImageUrl(WireModel):
    url: str


class TextPart(WireModel):
    type: Literal["text"] = "text"
    text: str


class ImageUrlPart(WireModel):
    type: Literal["image_url"] = "image_url"
    image_url: ImageUrl


# The discriminator makes the "type" key mandatory on input even though the fields have defaults.
ContentPart = Annotated[TextPart | ImageUrlPart, Field(discriminator="type")]


def _content_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "parts"
    return None


# Untagged in serde; choosing the branch by JSON type keeps errors about the branch that applies.
MessageContent = Annotated[
    Annotated[str, Tag("text")] | Annotated[list[ContentPart], Tag("parts")],
    Discriminator(
        _content_kind,
        custom_error_type="invalid_content",
        custom_error_message="content must be a string or an array of parts",
    ),
]


class ConversationMessage(WireModel):
    # Rust declares ``content`` before ``role``, so that is the key order on the wire.
    content: MessageContent
    role: str

    def text_content(self) -> str:
        """The text parts joined, images dropped (what Paddler counts as the message text)."""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content if isinstance(part, TextPart))

    def image_urls(self) -> list[ImageUrl]:
        if isinstance(self.content, str):
            return []
        return [part.image_url for part in self.content if isinstance(part, ImageUrlPart)]
