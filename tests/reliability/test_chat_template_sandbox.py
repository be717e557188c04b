"""A chat template that reaches for Python internals fails instead of running (issue 8, item 3).

End to end through a real agent: the override compiles (it is valid Jinja), so the agent takes
the state, and every conversation rendered with it ends with ChatTemplateError; the agent keeps
serving.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from paddler_tui.protocol.desired_state import ChatTemplate
from paddler_tui.protocol.envelope import GeneratedToken
from paddler_tui.protocol.generated_token import ChatTemplateError
from paddler_tui.protocol.inference_socket import ResponseEnvelope
from tests.reliability.streams import is_done
from tests.support.cluster import (
    Cluster,
    collect,
    deterministic_state,
    http_client,
    raw_prompt_body,
)

pytestmark = pytest.mark.slow

ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ messages.__class__.__base__.__subclasses__() }}",
    "{{ raise_exception.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.system('touch /tmp/pwned') }}",
]
CONVERSATION = {
    "add_generation_prompt": True,
    "conversation_history": [{"role": "user", "content": "Hi"}],
    "enable_thinking": False,
    "max_tokens": 4,
}


@pytest.fixture(scope="module")
def cluster(make_module_cluster: Callable[[str], Cluster]) -> Cluster:
    return make_module_cluster("sandbox").start(agents=1, slots=1)


@pytest.mark.parametrize("template", ESCAPES)
async def test_a_template_reaching_python_internals_is_a_chat_template_error(
    cluster: Cluster, template: str
) -> None:
    state = deterministic_state().model_copy(
        update={
            "chat_template_override": ChatTemplate(content=template),
            "use_chat_template_override": True,
        }
    )
    cluster.put_state(state)
    cluster.wait_for_agents(1, slots_each=1)
    url = cluster.b.inference_url
    async with http_client() as client:
        (message,) = await collect(
            client, f"{url}/api/v1/continue_from_conversation_history", CONVERSATION
        )
        assert isinstance(message, ResponseEnvelope)
        assert isinstance(message.response, GeneratedToken)
        assert isinstance(message.response.value, ChatTemplateError)
        assert "is unsafe" in message.response.value.value
        served = await collect(client, f"{url}/api/v1/continue_from_raw_prompt", raw_prompt_body(2))
        assert is_done(served[-1])
