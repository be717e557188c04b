"""Grammars on the real engine: constrained output, and bad grammars that must not crash it.

llama.cpp aborts the whole process when a grammar eliminates every candidate and overflows its
stack on deeply nested grammars; each case here would have killed the test process before.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import jsonschema
import pytest

from paddler_tui.server.agent.engine.engine import Engine
from paddler_tui.server.agent.engine.grammar_guard import MAX_NESTING, MAX_RULES
from paddler_tui.server.agent.engine.types import (
    CANDIDATES_ELIMINATED_MESSAGE,
    EngineSettings,
    GrammarConversionError,
    JobFailed,
    SamplingSettings,
)
from tests.agent.engine_helpers import GREEDY, SAMPLED, chat, finished, model_path, submit
from tests.agent.test_grammar_guard import chain, nested

QUESTION = chat("Is the sky blue? Answer yes or no.")


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    loaded = Engine.load(EngineSettings(model_path=model_path(), slots=2, context_size=1024))
    yield loaded
    loaded.close()


def failure(engine: Engine, grammar: str, sampling: SamplingSettings = GREEDY) -> JobFailed:
    collector = submit(engine, QUESTION, max_tokens=10, grammar=(grammar, "root"))
    terminal = collector.wait()
    assert isinstance(terminal, JobFailed), terminal
    # The engine goes on serving.
    assert finished(submit(engine, QUESTION, max_tokens=2)).generated_tokens == 2
    assert engine.slots_processing == 0
    return terminal


@pytest.mark.parametrize("sampling", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
def test_a_grammar_that_allows_no_token_is_a_sampler_error(
    engine: Engine, sampling: SamplingSettings
) -> None:
    terminal = failure(engine, r"root ::= [^\x00-\U0010FFFF]", sampling)
    assert (terminal.kind, terminal.message) == ("sampler", CANDIDATES_ELIMINATED_MESSAGE)


def test_a_grammar_that_dead_ends_after_some_output_is_a_sampler_error(engine: Engine) -> None:
    # No token can produce a NUL character, so after "a" nothing is allowed.
    collector = submit(engine, QUESTION, max_tokens=10, grammar=(r'root ::= "a" "\x00"', "root"))
    terminal = collector.wait()
    assert collector.text == "a"
    assert isinstance(terminal, JobFailed)
    assert terminal.message == CANDIDATES_ELIMINATED_MESSAGE


@pytest.mark.parametrize(
    ("grammar", "reason"),
    [
        (nested(20 * MAX_NESTING), "nests groups"),
        (chain(10 * MAX_RULES), "rules"),
    ],
    ids=["deep-nesting", "long-rule-chain"],
)
def test_grammars_that_would_overflow_llama_cpp_are_refused(
    engine: Engine, grammar: str, reason: str
) -> None:
    terminal = failure(engine, grammar)
    assert terminal.kind == "grammar_init"
    assert terminal.message.startswith("Failed to initialize grammar sampler: grammar ")
    assert reason in terminal.message


@pytest.mark.parametrize(
    "grammar",
    [
        'root ::= "yes',
        "root ::= undefined-rule",
        'root ::= root "a"',
        'start ::= "yes"',
    ],
    ids=["unterminated", "undefined-rule", "left-recursion", "no-root"],
)
def test_grammars_llama_cpp_cannot_parse_fail_initialization(engine: Engine, grammar: str) -> None:
    terminal = failure(engine, grammar)
    assert terminal.kind == "grammar_init"
    assert terminal.message.startswith("Failed to initialize grammar sampler: llama.cpp rejected")


def test_a_json_schema_grammar_yields_valid_json(engine: Engine) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}, "confidence": {"type": "integer"}},
        "required": ["answer", "confidence"],
        "additionalProperties": False,
    }
    grammar = engine.json_schema_grammar(json.dumps(schema))
    collector = submit(engine, QUESTION, max_tokens=60, grammar=(grammar, "root"))
    assert finished(collector).reason == "eog"
    jsonschema.validate(json.loads(collector.text), schema)


@pytest.mark.parametrize(
    ("schema", "error"),
    [
        ("not json", "JSONDecodeError"),
        ('{"type": "no-such-type"}', "Unrecognized schema"),
        ('{"$ref": "#/nowhere"}', "Error resolving ref"),
    ],
)
def test_schemas_the_converter_cannot_handle(schema: str, error: str) -> None:
    with pytest.raises(GrammarConversionError, match=error):
        Engine.json_schema_grammar(schema)
