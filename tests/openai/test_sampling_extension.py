"""Per-request sampling (paddler-tui extension): on the wire only when set, honoured by agents."""

from __future__ import annotations

from paddler_tui.protocol import codec
from paddler_tui.protocol.conversation import ConversationMessage
from paddler_tui.protocol.inference_parameters import InferenceParameters
from paddler_tui.protocol.requests import ContinueFromConversationHistoryParams, SamplingOverrides
from paddler_tui.server.agent.running_requests import sampling_settings

ADAPTER = codec.adapter_for(ContinueFromConversationHistoryParams)

PADDLER_BODY = (
    b'{"add_generation_prompt":true,"conversation_history":[{"content":"hi","role":"user"}],'
    b'"enable_thinking":false,"grammar":null,"max_tokens":5,"parse_tool_calls":false,"tools":[]}'
)


def params(sampling: SamplingOverrides | None = None) -> ContinueFromConversationHistoryParams:
    return ContinueFromConversationHistoryParams(
        add_generation_prompt=True,
        conversation_history=[ConversationMessage(role="user", content="hi")],
        enable_thinking=False,
        max_tokens=5,
        sampling=sampling,
    )


def test_without_overrides_the_message_is_paddlers() -> None:
    assert codec.encode(ADAPTER, params()) == PADDLER_BODY
    assert codec.decode(ADAPTER, PADDLER_BODY) == params()


def test_only_the_set_overrides_travel() -> None:
    encoded = codec.encode(ADAPTER, params(SamplingOverrides(temperature=0.7)))
    assert b'"parse_tool_calls":false,"sampling":{"temperature":0.7},"tools":[]' in encoded
    assert codec.decode(ADAPTER, encoded) == params(SamplingOverrides(temperature=0.7))


def test_agents_apply_the_overrides_to_the_cluster_parameters() -> None:
    cluster = InferenceParameters.default()
    unchanged = sampling_settings(cluster)
    assert (unchanged.temperature, unchanged.top_p, unchanged.seed) == (0.8, 0.8, None)
    overridden = sampling_settings(cluster, SamplingOverrides(seed=7, temperature=0.0))
    assert (overridden.temperature, overridden.top_p, overridden.seed) == (0.0, 0.8, 7)
    assert overridden.top_k == unchanged.top_k
