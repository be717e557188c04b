"""The OpenAI service's OpenAPI document accepts the bodies the service accepts.

Schema-driven clients and fuzzers (schemathesis in ``tests/reliability``) trust the document: a
body it calls invalid must be refused, and one it calls valid must be served. Lists that keep
members of unknown kinds as plain JSON are where the two could part.
"""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import pytest

from paddler_tui.net_address import HostPort
from paddler_tui.server.balancer.balancer import Balancer, BalancerSettings
from paddler_tui.server.balancer.state_database import MemoryStateDatabase
from paddler_tui.server.balancer.web.openai_service import create_openai_app

TOOLS = [
    {"type": "function", "name": "f", "parameters": {"type": "object"}},
    {"type": "web_search"},
]
RESPONSES = {
    "model": "m",
    "input": [
        {"role": "system", "content": "Be brief."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hello"}],
        },
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "output": "42"},
        {"type": "reasoning", "summary": []},
    ],
    "tools": TOOLS,
    "prompt_cache_key": "conversation-1",
}
CHAT = {
    "model": "m",
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        {"role": "assistant", "content": None, "tool_calls": []},
    ],
    "tools": [{"type": "function", "function": {"name": "f"}}, {"type": "custom"}],
    "user": "someone",
}
APP = create_openai_app(
    Balancer(
        BalancerSettings(
            inference_addr=HostPort.parse("127.0.0.1:1"),
            management_addr=HostPort.parse("127.0.0.1:2"),
        ),
        MemoryStateDatabase(),
    )
)


def body_schema(path: str) -> dict[str, Any]:
    document = APP.openapi()
    content = document["paths"][path]["post"]["requestBody"]["content"]
    # The operation's schema, with the document's components for its references to resolve in.
    return {**content["application/json"]["schema"], "components": document["components"]}


@pytest.mark.parametrize(
    ("path", "body"), [("/v1/responses", RESPONSES), ("/v1/chat/completions", CHAT)]
)
async def test_a_body_the_service_takes_is_valid_by_its_document(
    path: str, body: dict[str, Any]
) -> None:
    jsonschema.Draft202012Validator(body_schema(path)).validate(body)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=APP), base_url="http://test"
    ) as client:
        response = await client.post(path, json=body)
    # No agents: the request passed validation and found no slot.
    assert response.status_code not in (400, 422), response.text
