"""Classifying generated text into content, reasoning and tool-call sections, one token at a time.

Marker text (``<think>``, ``</tool_call>``, …) is never emitted. A marker may span several tokens,
so text that could still become one is held back until the next token settles it (unless the
marker is a single token of the vocabulary, which the model emits whole). A token that
leaves text held back in content counts as *undeterminable*, as in Paddler: it may be content or
open a section. Every other token counts exactly once, as the kind of the section its text (or
the marker it completed) belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from paddler_tui.protocol.generated_token import TokenKind
from paddler_tui.server.agent.output.token_markers import MarkerPair, Markers

Section = Literal["content", "reasoning", "tool_call"]


@dataclass(frozen=True, slots=True)
class Text:
    kind: TokenKind
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallSection:
    """A finished tool-call section, markers included, ready to be parsed."""

    text: str


Output: TypeAlias = Text | ToolCallSection


@dataclass(frozen=True, slots=True)
class Classified:
    kind: TokenKind  # how the token counts in the usage
    outputs: tuple[Output, ...]


@dataclass(frozen=True, slots=True)
class _Action:
    """What finding a marker does: the section it leads to, and its close marker there."""

    kind: Section  # the kind the marker's own token counts as
    to: Section
    close: str | None = None


@dataclass
class _Feed:
    outputs: list[Output] = field(default_factory=list)
    last_kind: TokenKind | None = None


class TokenClassifier:
    """Per request. Not thread-safe: one thread feeds it, then reads :meth:`finish` once."""

    def __init__(
        self,
        markers: Markers,
        *,
        show_reasoning: bool,
        start_in: MarkerPair | None = None,
        bare_json_tool_calls: bool = False,
    ) -> None:
        self._show_reasoning = show_reasoning
        self._bare_json = bare_json_tool_calls and markers.bare_json_tool_calls
        self._section: Section = "content"
        self._close: str | None = None
        if start_in is not None:
            self._section, self._close = "reasoning", start_in.close
        self._at_start = True  # nothing but whitespace seen: a bare JSON tool call may begin
        self._held = ""
        self._atomic = markers.atomic
        self._tool_text: list[str] = []
        self._openers: dict[str, _Action] = {}
        for pair in markers.reasoning:
            self._openers[pair.open] = _Action("reasoning", "reasoning", pair.close)
        for pair in markers.tool_calls:
            self._openers[pair.open] = _Action("tool_call", "tool_call", pair.close)
        for text in markers.hidden:
            self._openers[text] = _Action("content", "content")

    def feed(self, piece: str) -> Classified:
        """Classify one token from its text."""
        feed = _Feed()
        text, self._held = self._held + piece, ""
        while text:
            text = self._advance(text, feed)
        if self._held and piece and self._section == "content":
            kind: TokenKind = "undeterminable"
        else:
            # Text held inside a section is its text or its close marker: either way, its kind.
            kind = feed.last_kind or self._section
        return Classified(kind, tuple(feed.outputs))

    def finish(self) -> tuple[Output, ...]:
        """The end of the output: release held text, hand over an unclosed tool-call section."""
        feed = _Feed()
        held, self._held = self._held, ""
        if held:
            # Never settled: in content it is the undeterminable text Paddler reports.
            self._emit(feed, held, "undeterminable" if self._section == "content" else None)
        if self._section == "tool_call":
            feed.outputs.append(ToolCallSection("".join(self._tool_text)))
            self._tool_text.clear()
        return tuple(feed.outputs)

    def _watched(self) -> dict[str, _Action]:
        if self._section == "content":
            return self._openers
        if self._close is None:
            return {}
        kind: Section = "reasoning" if self._section == "reasoning" else "tool_call"
        return {self._close: _Action(kind, "content")}

    def _advance(self, text: str, feed: _Feed) -> str:
        """Consume a prefix of ``text``; return what is left to process."""
        if self._section == "content" and self._at_start:
            stripped = text.lstrip()
            if not stripped:
                self._emit(feed, text)
                return ""
            self._at_start = False
            if self._bare_json and stripped.startswith("{"):
                self._emit(feed, text[: len(text) - len(stripped)])
                self._section, self._close = "tool_call", None
                return stripped
        watched = self._watched()
        found = _first_marker(text, watched)
        hold_at = _hold_position(text, [m for m in watched if m not in self._atomic])
        if found is not None and (hold_at is None or found[0] <= hold_at):
            index, marker = found
            self._emit(feed, text[:index])
            self._enter(marker, watched[marker], feed)
            return text[index + len(marker) :]
        if hold_at is not None:
            self._emit(feed, text[:hold_at])
            self._held = text[hold_at:]
            return ""
        self._emit(feed, text)
        return ""

    def _enter(self, marker: str, action: _Action, feed: _Feed) -> None:
        self._at_start = False
        if action.to == "tool_call":
            self._tool_text = [marker]
        elif self._section == "tool_call":
            self._tool_text.append(marker)
            feed.outputs.append(ToolCallSection("".join(self._tool_text)))
            self._tool_text.clear()
        self._section, self._close = action.to, action.close
        feed.last_kind = action.kind

    def _emit(self, feed: _Feed, text: str, kind: TokenKind | None = None) -> None:
        if not text:
            return
        section = self._section
        feed.last_kind = section
        if section == "tool_call":
            self._tool_text.append(text)
        elif section == "reasoning" and not self._show_reasoning:
            return
        kind = kind or section
        outputs = feed.outputs
        previous = outputs[-1] if outputs else None
        if isinstance(previous, Text) and previous.kind == kind:
            outputs[-1] = Text(kind, previous.text + text)
        else:
            outputs.append(Text(kind, text))


def _first_marker(text: str, watched: dict[str, _Action]) -> tuple[int, str] | None:
    best: tuple[int, str] | None = None
    for marker in watched:
        index = text.find(marker)
        if index >= 0 and (best is None or index < best[0]):
            best = (index, marker)
    return best


def _hold_position(text: str, markers: list[str]) -> int | None:
    """Where the longest tail of ``text`` that is a proper prefix of a marker begins."""
    longest = max((len(marker) for marker in markers), default=0)
    for start in range(max(0, len(text) - longest + 1), len(text)):
        tail = text[start:]
        if any(marker.startswith(tail) and marker != tail for marker in markers):
            return start
    return None
