"""Grammar shapes that would overflow llama.cpp's recursion are refused before it sees them."""

from __future__ import annotations

from paddler_tui.server.agent.engine.grammar_guard import (
    MAX_NESTING,
    MAX_RULES,
    grammar_shape_error,
)


def nested(depth: int) -> str:
    return "root ::= " + "(" * depth + '"a"' + ")" * depth


def chain(length: int) -> str:
    rules = [f"r{i} ::= r{i + 1}" for i in range(length)]
    return "\n".join(["root ::= r0", *rules, f'r{length} ::= "x"'])


def test_ordinary_grammars_pass() -> None:
    assert grammar_shape_error('root ::= "yes" | "no"') is None
    assert grammar_shape_error(nested(MAX_NESTING)) is None
    assert grammar_shape_error(chain(MAX_RULES - 2)) is None


def test_deep_nesting_is_refused() -> None:
    assert grammar_shape_error(nested(MAX_NESTING + 1)) == (
        f"grammar nests groups {MAX_NESTING + 1} deep (at most {MAX_NESTING} are supported)"
    )


def test_long_rule_chains_and_many_repetitions_are_refused() -> None:
    assert "rules" in (grammar_shape_error(chain(MAX_RULES)) or "")
    assert "rules" in (grammar_shape_error("root ::= " + '"a"? ' * MAX_RULES) or "")


def test_literals_classes_and_comments_do_not_count() -> None:
    text = 'root ::= "((((\\"((((" [(((\\]] # ((((((\n'
    assert grammar_shape_error(text.replace("((((", "(" * MAX_NESTING)) is None


def test_unterminated_literals_are_left_to_llama_cpp() -> None:
    assert grammar_shape_error('root ::= "' + "(" * (MAX_NESTING + 1)) is None
    assert grammar_shape_error("root ::= [abc") is None
