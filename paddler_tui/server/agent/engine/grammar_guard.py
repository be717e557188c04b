"""Rejecting GBNF grammars whose shape would crash llama.cpp before llama.cpp sees them.

llama.cpp parses nested groups and expands rule references recursively on the engine thread's
stack: about 20 000 nested groups, or a chain of about 100 000 rules, overflow it and kill the
whole process. Grammars far below those sizes are all any schema needs, so anything above a
tenth of them is refused here. Syntax errors are left to llama.cpp, which reports them safely.
"""

from __future__ import annotations

MAX_NESTING = 1_000
# Rule definitions plus the rules llama.cpp generates for groups and repetition operators.
MAX_RULES = 10_000


def grammar_shape_error(grammar: str) -> str | None:
    """Why the grammar is refused, or None."""
    depth = deepest = rules = 0
    position, length = 0, len(grammar)
    while position < length:
        char = grammar[position]
        if char == "#":
            end = grammar.find("\n", position)
            position = length if end < 0 else end
        elif char in '"[':
            position = _skip_quoted(grammar, position, '"' if char == '"' else "]")
            if position < 0:
                return None  # unterminated: llama.cpp reports the syntax error
        elif char == "(":
            depth += 1
            rules += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth = max(0, depth - 1)
        elif char in "?*+{" or grammar.startswith("::=", position):
            rules += 1
        position += 1
    if deepest > MAX_NESTING:
        return f"grammar nests groups {deepest} deep (at most {MAX_NESTING} are supported)"
    if rules > MAX_RULES:
        return f"grammar needs {rules} rules (at most {MAX_RULES} are supported)"
    return None


def _skip_quoted(text: str, start: int, closing: str) -> int:
    """The index of the closing character of a literal or class opened at ``start``, or -1."""
    position = start + 1
    while position < len(text):
        char = text[position]
        if char == "\\":
            position += 2
            continue
        if char == closing:
            return position
        position += 1
    return -1
