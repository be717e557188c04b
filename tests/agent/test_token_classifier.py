"""Token classification on synthetic pieces, and marker detection from templates and vocabulary."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import pytest

from paddler_tui.server.agent.output.token_classifier import (
    Classified,
    Output,
    Text,
    TokenClassifier,
    ToolCallSection,
)
from paddler_tui.server.agent.output.token_markers import (
    MarkerPair,
    Markers,
    detect_markers,
    open_reasoning_at_end,
)

THINK = MarkerPair("<think>", "</think>")
HERMES = MarkerPair("<tool_call>", "</tool_call>")
QWEN = Markers(reasoning=(THINK,), tool_calls=(HERMES,))
MISTRAL = Markers(
    reasoning=(MarkerPair("[THINK]", "[/THINK]"),),
    tool_calls=(MarkerPair("[TOOL_CALLS]", None),),
)
LLAMA3 = Markers(tool_calls=(MarkerPair("<|python_tag|>", None),), bare_json_tool_calls=True)
HARMONY = detect_markers(None, lambda text: text == "<|channel|>")
QWEN_VOCABULARY = {"<think>", "</think>", "<tool_call>", "</tool_call>"}


def no_tokens(_text: str) -> bool:
    return False


def run(
    classifier: TokenClassifier, pieces: Iterable[str]
) -> tuple[list[Classified], tuple[Output, ...]]:
    classified = [classifier.feed(piece) for piece in pieces]
    return classified, classifier.finish()


def texts(classified: list[Classified], finished: tuple[Output, ...]) -> dict[str, str]:
    """The emitted text per kind, and every finished tool-call section under ``section``."""
    joined: dict[str, str] = {}
    outputs = [output for item in classified for output in item.outputs] + list(finished)
    for output in outputs:
        if isinstance(output, Text):
            joined[output.kind] = joined.get(output.kind, "") + output.text
        else:
            joined["section"] = joined.get("section", "") + output.text + "|"
    return joined


def kinds(classified: list[Classified]) -> list[str]:
    return [item.kind for item in classified]


def test_multi_token_markers_are_held_back_and_never_emitted() -> None:
    classifier = TokenClassifier(QWEN, show_reasoning=True)
    classified, finished = run(classifier, ["<", "think", ">", "Plan", " it", "</", "think>", "Hi"])
    assert texts(classified, finished) == {"reasoning": "Plan it", "content": "Hi"}
    # Held in content, a token may open a section; held in reasoning, it is reasoning either way.
    assert kinds(classified) == [
        "undeterminable",
        "undeterminable",
        "reasoning",
        "reasoning",
        "reasoning",
        "reasoning",
        "reasoning",
        "content",
    ]


def test_single_token_markers_count_as_their_section() -> None:
    classifier = TokenClassifier(QWEN, show_reasoning=True)
    classified, _ = run(classifier, ["<think>", "x", "</think>", "y", "<tool_call>", "{}"])
    assert kinds(classified) == [
        "reasoning",
        "reasoning",
        "reasoning",
        "content",
        "tool_call",
        "tool_call",
    ]
    assert [item.outputs for item in classified[:1]] == [()]


def test_a_prefix_that_turns_out_not_to_be_a_marker_is_released_as_content() -> None:
    classifier = TokenClassifier(QWEN, show_reasoning=True)
    classified, finished = run(classifier, ["a <", "b> and <th", "ought>"])
    assert texts(classified, finished) == {"content": "a <b> and <thought>"}
    assert kinds(classified) == ["undeterminable", "undeterminable", "content"]
    assert classified[1].outputs == (Text("content", "<b> and "),)


def test_text_still_held_at_the_end_is_undeterminable() -> None:
    classifier = TokenClassifier(QWEN, show_reasoning=True)
    classified, finished = run(classifier, ["Hello <thi"])
    assert classified[0].outputs == (Text("content", "Hello "),)
    assert finished == (Text("undeterminable", "<thi"),)


def test_held_text_at_the_end_of_reasoning_stays_reasoning_or_hidden() -> None:
    shown = TokenClassifier(QWEN, show_reasoning=True, start_in=THINK)
    assert run(shown, ["why </thi"])[1] == (Text("reasoning", "</thi"),)
    hidden = TokenClassifier(QWEN, show_reasoning=False, start_in=THINK)
    classified, finished = run(hidden, ["why </thi"])
    assert (classified[0].outputs, finished) == ((), ())


def test_thinking_off_hides_reasoning_but_counts_it() -> None:
    classifier = TokenClassifier(QWEN, show_reasoning=False)
    classified, finished = run(classifier, ["<think>", "secret", "</think>", "\n\nAnswer"])
    assert texts(classified, finished) == {"content": "\n\nAnswer"}
    assert kinds(classified) == ["reasoning", "reasoning", "reasoning", "content"]


def test_a_prompt_ending_inside_reasoning_starts_there() -> None:
    start = open_reasoning_at_end("<|im_start|>assistant\n<think>\n", QWEN)
    assert start == THINK
    classifier = TokenClassifier(QWEN, show_reasoning=True, start_in=start)
    classified, finished = run(classifier, ["Let", " me", "</think>", "Four"])
    assert texts(classified, finished) == {"reasoning": "Let me", "content": "Four"}


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("<think>\n\n</think>\n\n", None),
        ("no markers", None),
        ("<think>a</think> then <think>", THINK),
    ],
)
def test_open_reasoning_at_end(prompt: str, expected: MarkerPair | None) -> None:
    assert open_reasoning_at_end(prompt, QWEN) == expected


def test_hermes_tool_call_sections_are_raw_tool_call_text_and_parsed_whole() -> None:
    classifier = TokenClassifier(QWEN, show_reasoning=True)
    pieces = ["Sure.", "<tool_call>", '{"name": "f"', "}", "</tool_call>", "\n", "<tool_call>"]
    pieces += ['{"name": "g"}']
    classified, finished = run(classifier, pieces)
    assert texts(classified, finished) == {
        "content": "Sure.\n",
        "tool_call": '{"name": "f"}{"name": "g"}',
        "section": '<tool_call>{"name": "f"}</tool_call>|<tool_call>{"name": "g"}|',
    }
    assert classified[4].outputs == (ToolCallSection('<tool_call>{"name": "f"}</tool_call>'),)
    assert kinds(classified).count("tool_call") == 6


def test_mistral_markers() -> None:
    classifier = TokenClassifier(MISTRAL, show_reasoning=True)
    pieces = ["[THINK]", "hmm", "[/THINK]", "ok", "[TOOL_CALLS]", '[{"name": "f"}]']
    classified, finished = run(classifier, pieces)
    assert texts(classified, finished) == {
        "reasoning": "hmm",
        "content": "ok",
        "tool_call": '[{"name": "f"}]',
        "section": '[TOOL_CALLS][{"name": "f"}]|',
    }


def test_llama3_bare_json_at_the_start_is_a_tool_call_only_with_tools() -> None:
    pieces = ["\n", ' {"name"', ': "f", "parameters": {}}']
    with_tools = TokenClassifier(LLAMA3, show_reasoning=True, bare_json_tool_calls=True)
    classified, finished = run(with_tools, pieces)
    assert texts(classified, finished) == {
        "content": "\n ",
        "tool_call": '{"name": "f", "parameters": {}}',
        "section": '{"name": "f", "parameters": {}}|',
    }
    without = TokenClassifier(LLAMA3, show_reasoning=True)
    assert texts(*run(without, pieces)) == {"content": '\n {"name": "f", "parameters": {}}'}


def test_llama3_json_later_in_the_answer_is_content() -> None:
    classifier = TokenClassifier(LLAMA3, show_reasoning=True, bare_json_tool_calls=True)
    assert texts(*run(classifier, ["Here: ", "{}"])) == {"content": "Here: {}"}


def test_python_tag_opens_a_tool_call_to_the_end() -> None:
    classifier = TokenClassifier(LLAMA3, show_reasoning=True)
    _, finished = run(classifier, ["<|python_tag|>", '{"name": "f"}'])
    assert finished == (ToolCallSection('<|python_tag|>{"name": "f"}'),)


def test_harmony_channels() -> None:
    pieces = ["<|channel|>", "analysis", "<|message|>", "think", "<|end|>"]
    pieces += ["<|start|>", "assistant", "<|channel|>", "final", "<|message|>", "Answer"]
    classifier = TokenClassifier(HARMONY, show_reasoning=True)
    assert texts(*run(classifier, pieces)) == {"reasoning": "think", "content": "Answer"}


def test_markers_that_are_single_tokens_hold_nothing_back() -> None:
    markers = detect_markers(None, QWEN_VOCABULARY.__contains__)
    assert markers.atomic == QWEN_VOCABULARY
    classifier = TokenClassifier(markers, show_reasoning=True)
    classified, finished = run(classifier, ["<think>", "a < b", "</think>", "if x <", "= y"])
    assert texts(classified, finished) == {"reasoning": "a < b", "content": "if x <= y"}
    assert kinds(classified) == ["reasoning", "reasoning", "reasoning", "content", "content"]


def test_no_markers_means_everything_is_content() -> None:
    classifier = TokenClassifier(Markers(), show_reasoning=True)
    classified, finished = run(classifier, ["<think>", "a", ""])
    assert texts(classified, finished) == {"content": "<think>a"}
    assert kinds(classified) == ["content", "content", "content"]


def test_an_empty_piece_keeps_the_current_kind() -> None:
    classifier = TokenClassifier(QWEN, show_reasoning=True, start_in=THINK)
    assert classifier.feed("") == Classified("reasoning", ())


def test_detect_markers_from_the_template_or_the_vocabulary() -> None:
    assert detect_markers(None, no_tokens) == Markers()
    assert detect_markers("{{ '<think>' }} <tool_call>", no_tokens) == QWEN
    vocabulary = {"[THINK]", "[TOOL_CALLS]"}
    assert detect_markers("plain", vocabulary.__contains__) == replace(
        MISTRAL, atomic=frozenset(vocabulary)
    )
    assert detect_markers(None, "<|python_tag|>".__eq__) == replace(
        LLAMA3, atomic=frozenset({"<|python_tag|>"})
    )
    assert HARMONY.hidden == ("<|start|>assistant", "<|channel|>final<|message|>")
