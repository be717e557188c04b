"""The services' OpenAPI documents: request bodies from the wire models, and the API key.

The body schemas are checked against real bodies (so they describe the wire, externally tagged
enums included, not the Python fields), and every reference in a document resolves.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from types import GenericAlias
from typing import Any

import pytest
from fastapi import FastAPI
from jsonschema import Draft202012Validator
from pydantic import create_model

from paddler_tui.net_address import HostPort
from paddler_tui.protocol.wire import WireModel
from paddler_tui.server.balancer.balancer import Balancer, BalancerSettings
from paddler_tui.server.balancer.state_database import MemoryStateDatabase
from paddler_tui.server.balancer.web.inference_service import create_inference_app
from paddler_tui.server.balancer.web.management_service import create_management_app
from paddler_tui.server.balancer.web.openai_service import create_openai_app
from paddler_tui.server.balancer.web.openapi import ServiceApp, json_body
from tests.support.cluster import deterministic_state, state_json

FACTORIES: list[Callable[[Balancer], FastAPI]] = [
    create_inference_app,
    create_management_app,
    create_openai_app,
]
ADDR = HostPort("127.0.0.1", 0)


def balancer(api_key: str | None = None) -> Balancer:
    settings = BalancerSettings(inference_addr=ADDR, management_addr=ADDR, api_key=api_key)
    return Balancer(settings, MemoryStateDatabase())


def references(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, child in value.items():
            if key == "$ref":
                yield child
            else:
                yield from references(child)
    elif isinstance(value, list):
        for child in value:
            yield from references(child)


def body_validator(document: dict[str, Any], path: str, method: str) -> Draft202012Validator:
    body = document["paths"][path][method]["requestBody"]
    assert body["required"] is True
    schema = body["content"]["application/json"]["schema"]
    return Draft202012Validator({**schema, "components": document["components"]})


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)
def test_every_reference_resolves(factory: Callable[[Balancer], FastAPI]) -> None:
    document = factory(balancer()).openapi()
    schemas = document["components"]["schemas"]
    refs = set(references(document))
    assert refs
    for ref in refs:
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    assert "x-paddler-definitions" not in json.dumps(document)


def test_the_desired_state_schema_describes_the_wire() -> None:
    document = create_management_app(balancer()).openapi()
    validator = body_validator(document, "/api/v1/balancer_desired_state", "put")
    state = json.loads(state_json(deterministic_state()))
    assert list(validator.iter_errors(state)) == []
    for model in ("None", {"Url": {"url": "http://x/m.gguf"}}, {"LocalToAgent": "/m.gguf"}):
        assert validator.is_valid({**state, "model": model})
    # The Python shape of a variant is not the wire's.
    assert not validator.is_valid({**state, "model": {"value": "/m.gguf"}})
    assert not validator.is_valid({**state, "model": {}})


def test_the_inference_bodies_describe_the_wire() -> None:
    document = create_inference_app(balancer()).openapi()
    raw = body_validator(document, "/api/v1/continue_from_raw_prompt", "post")
    assert raw.is_valid({"raw_prompt": "Hi", "max_tokens": 2})
    assert not raw.is_valid({"raw_prompt": "Hi"})
    embeddings = body_validator(document, "/api/v1/generate_embedding_batch", "post")
    batch = {"input_batch": [{"content": "Hi", "id": "1"}]}
    assert embeddings.is_valid({**batch, "normalization_method": "L2"})
    assert embeddings.is_valid({**batch, "normalization_method": {"RmsNorm": {"epsilon": 0.1}}})
    assert not embeddings.is_valid({**batch, "normalization_method": "Nope"})


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)
def test_a_key_is_declared_for_every_route_but_health(
    factory: Callable[[Balancer], FastAPI],
) -> None:
    assert "securitySchemes" not in factory(balancer()).openapi()["components"]
    document = factory(balancer("key")).openapi()
    assert document["components"]["securitySchemes"] == {
        "bearer": {"type": "http", "scheme": "bearer"}
    }
    assert document["security"] == [{"bearer": []}]
    for path, operations in document["paths"].items():
        for operation in operations.values():
            assert ("security" in operation) == (path == "/health")
            assert operation.get("security", []) == []


def thing(value_type: type) -> type[WireModel]:
    """A wire model named Thing; two of them differ only in their field's type."""
    return create_model("Thing", __base__=WireModel, value=(value_type, ...))


def test_two_body_schemas_under_one_name_are_refused() -> None:
    app = ServiceApp()

    async def route() -> None: ...

    for path, value_type in (("/a", str), ("/b", int)):
        body = json_body(GenericAlias(list, thing(value_type)))  # list[Thing], made at run time
        app.add_api_route(path, route, methods=["POST"], openapi_extra=body)
    with pytest.raises(ValueError, match="named Thing"):
        app.openapi()
