"""The reasoning and tool-call markers a model writes, found in its chat template and vocabulary.

Models announce their sections with marker text (``<think>``, ``<tool_call>``, ``[THINK]``, …).
Rather than hard-coding one model, a known marker family is active when its probe text is one
token of the vocabulary (a special token the model was trained to emit) or appears in the chat
template (which then teaches the model to write it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


@dataclass(frozen=True, slots=True)
class MarkerPair:
    open: str
    close: str | None  # None: the section runs to the end of the output


@dataclass(frozen=True, slots=True)
class Markers:
    reasoning: tuple[MarkerPair, ...] = ()
    tool_calls: tuple[MarkerPair, ...] = ()
    # Framing text dropped wherever it appears outside a section (gpt-oss channel headers).
    hidden: tuple[str, ...] = ()
    # Llama 3 also calls tools with a bare JSON object as the whole answer.
    bare_json_tool_calls: bool = False
    # Markers that are one token: the model emits them whole, so no text is held back for them.
    atomic: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class _Family:
    probe: str
    markers: Markers


_FAMILIES = (
    _Family("<think>", Markers(reasoning=(MarkerPair("<think>", "</think>"),))),
    _Family("[THINK]", Markers(reasoning=(MarkerPair("[THINK]", "[/THINK]"),))),
    # gpt-oss (harmony): analysis is the reasoning channel, final the answer.
    _Family(
        "<|channel|>",
        Markers(
            reasoning=(MarkerPair("<|channel|>analysis<|message|>", "<|end|>"),),
            hidden=("<|start|>assistant", "<|channel|>final<|message|>"),
        ),
    ),
    # Gemma 4.
    _Family("<|channel>", Markers(reasoning=(MarkerPair("<|channel>thought", "<channel|>"),))),
    # Hermes, Qwen 2.5/3.
    _Family("<tool_call>", Markers(tool_calls=(MarkerPair("<tool_call>", "</tool_call>"),))),
    # Mistral.
    _Family("[TOOL_CALLS]", Markers(tool_calls=(MarkerPair("[TOOL_CALLS]", None),))),
    # Llama 3.1+.
    _Family(
        "<|python_tag|>",
        Markers(tool_calls=(MarkerPair("<|python_tag|>", None),), bare_json_tool_calls=True),
    ),
)


def detect_markers(template: str | None, is_single_token: Callable[[str], bool]) -> Markers:
    """The markers of every family whose probe is one token or appears in ``template``."""
    reasoning: list[MarkerPair] = []
    tool_calls: list[MarkerPair] = []
    hidden: list[str] = []
    bare_json = False
    for family in _FAMILIES:
        if (template is not None and family.probe in template) or is_single_token(family.probe):
            reasoning.extend(family.markers.reasoning)
            tool_calls.extend(family.markers.tool_calls)
            hidden.extend(family.markers.hidden)
            bare_json = bare_json or family.markers.bare_json_tool_calls
    texts = [pair.open for pair in reasoning + tool_calls]
    texts += [pair.close for pair in reasoning + tool_calls if pair.close is not None]
    atomic = frozenset(text for text in texts + hidden if is_single_token(text))
    return Markers(tuple(reasoning), tuple(tool_calls), tuple(hidden), bare_json, atomic)


def open_reasoning_at_end(prompt: str, markers: Markers) -> MarkerPair | None:
    """The reasoning section the prompt leaves open, if any.

    Templates of thinking models often end the generation prompt with ``<think>\\n``, so the
    output starts inside the reasoning section.
    """
    for pair in markers.reasoning:
        opened = prompt.rfind(pair.open)
        if opened >= 0 and (pair.close is None or prompt.rfind(pair.close) < opened):
            return pair
    return None
