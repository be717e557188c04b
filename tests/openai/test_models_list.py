"""``/v1/models``: the loaded models, by file name (no sockets)."""

from __future__ import annotations

from paddler_tui.server.balancer.agent_controller import AgentController
from paddler_tui.server.balancer.web.openai_service import loaded_models, model_list
from tests.balancer.pool_fakes import make_agent


def agent(model_path: str | None) -> AgentController:
    made, _ = make_agent("agent", slots=1)
    made.status = made.status.model_copy(update={"model_path": model_path})
    return made


def test_each_loaded_model_once_by_file_name() -> None:
    agents = [
        agent("/models/b.gguf"),
        agent(None),  # loading, or no model desired
        agent("/cache/snapshots/abc/a.gguf"),
        agent("/elsewhere/b.gguf"),
    ]
    assert loaded_models(agents) == ["a.gguf", "b.gguf"]


def test_list_shape() -> None:
    assert model_list(["a.gguf"], 1700000000) == {
        "object": "list",
        "data": [
            {"id": "a.gguf", "object": "model", "created": 1700000000, "owned_by": "paddler-tui"}
        ],
    }
    assert model_list([], 0) == {"object": "list", "data": []}
