"""``GrammarConstraint``: output constraints, tagged by a ``"type"`` key."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from paddler_tui.protocol.wire import WireModel


class GbnfGrammar(WireModel):
    type: Literal["gbnf"] = "gbnf"
    grammar: str
    root: str


class JsonSchemaGrammar(WireModel):
    # ``schema`` would shadow a BaseModel method, so the attribute is renamed; only the alias is
    # accepted on input (serde would reject a ``json_schema`` key) and construction uses it too:
    # ``JsonSchemaGrammar(schema="{...}")``.
    model_config = ConfigDict(serialize_by_alias=True)

    type: Literal["json_schema"] = "json_schema"
    # A JSON document inside a string, exactly as Paddler takes it.
    json_schema: str = Field(alias="schema")


GrammarConstraint = Annotated[GbnfGrammar | JsonSchemaGrammar, Field(discriminator="type")]
