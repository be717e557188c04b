"""Request bodies in the services' OpenAPI documents, from the wire models that validate them.

The routes read their bodies themselves (413 before reading past the limit, Paddler's 400 texts),
so FastAPI cannot see a model to document. ``openapi_extra=json_body(Model)`` gives a route the
schema of the same model it validates with; :class:`ServiceApp` moves the definitions those
schemas refer to into ``components/schemas``, where OpenAPI references point.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from paddler_tui.protocol import codec

REF_TEMPLATE = "#/components/schemas/{model}"
# An OpenAPI extension key, so the operation stays valid even before the definitions move.
DEFINITIONS = "x-paddler-definitions"


def json_body(model: Any) -> dict[str, Any]:
    """``openapi_extra`` for a route whose required JSON body is ``model``."""
    schema = codec.adapter_for(model).json_schema(ref_template=REF_TEMPLATE)
    definitions = schema.pop("$defs", {})
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
        DEFINITIONS: definitions,
    }


class ServiceApp(FastAPI):
    """A FastAPI app whose document carries the definitions of its :func:`json_body` routes,
    and says which routes need the bearer API key."""

    # Set when an API key is required: the paths that stay open; every other one needs the key.
    open_paths: frozenset[str] | None = None

    def openapi(self) -> dict[str, Any]:
        document = super().openapi()
        components = document.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        if self.open_paths is not None:
            components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            document["security"] = [{"bearer": []}]
        for path, operations in document.get("paths", {}).items():
            for operation in operations.values():
                if self.open_paths is not None and path in self.open_paths:
                    operation["security"] = []
                for name, definition in operation.pop(DEFINITIONS, {}).items():
                    if schemas.setdefault(name, definition) != definition:
                        raise ValueError(f"two different request body schemas are named {name}")
        return document
