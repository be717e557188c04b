"""JSON Schema to GBNF, through llama-cpp-python's converter (a port of llama.cpp's)."""

from __future__ import annotations

from llama_cpp import llama_grammar

from paddler_tui.server.agent.engine.types import GrammarConversionError


def json_schema_to_gbnf(schema: str) -> str:
    """Raises GrammarConversionError for text that is no JSON Schema the converter supports."""
    try:
        return str(llama_grammar.json_schema_to_gbnf(schema))
    # The converter fails in many ways (bad JSON, KeyError, unsupported keywords, recursion).
    except Exception as error:
        raise GrammarConversionError(f"{type(error).__name__}: {error}") from error
