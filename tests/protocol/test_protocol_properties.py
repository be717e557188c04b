"""Property tests: decode(encode(x)) == x for generated wire values."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from paddler_tui.protocol import codec
from paddler_tui.protocol import generated_token as gt
from paddler_tui.protocol.agent_issue import (
    AGENT_ISSUE_VARIANTS,
    AgentIssue,
    ChatTemplateDoesNotCompile,
    HuggingFaceCannotAcquireLock,
    ModelPath,
    SlotCannotStart,
)
from paddler_tui.protocol.envelope import GeneratedToken
from paddler_tui.protocol.inference_parameters import InferenceParameters
from paddler_tui.protocol.inference_socket import (
    InferenceServerMessage,
    ResponseEnvelope,
    decode_inference_server_message,
    encode_inference_server_message,
)
from paddler_tui.protocol.usage import TokenUsage

# orjson (like serde_json) refuses lone surrogates, so they are not JSON strings.
text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
i32 = st.integers(-(2**31), 2**31 - 1)
f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=8,
)

usage = st.builds(
    TokenUsage,
    prompt_tokens=u64,
    cached_prompt_tokens=u64,
    input_image_tokens=u64,
    input_audio_tokens=u64,
    content_tokens=u64,
    reasoning_tokens=u64,
    tool_call_tokens=u64,
    undeterminable_tokens=u64,
)

tool_call = st.builds(
    gt.ParsedToolCall,
    id=text,
    name=text,
    arguments=st.builds(gt.ValidJson, value=json_values) | st.builds(gt.InvalidJson, value=text),
)

_STRING_VARIANTS = [
    gt.ChatTemplateError,
    gt.ContentToken,
    gt.DetokenizationFailed,
    gt.GrammarIncompatibleWithThinking,
    gt.GrammarInitializationFailed,
    gt.GrammarRejectedModelOutput,
    gt.GrammarSyntaxError,
    gt.ImageDecodingFailed,
    gt.MultimodalNotSupported,
    gt.ReasoningToken,
    gt.SamplerError,
    gt.TokenGenerationDisabled,
    gt.ToolCallParseFailed,
    gt.ToolCallToken,
    gt.ToolSchemaInvalid,
    gt.UndeterminableToken,
]

generated_token_results: st.SearchStrategy[Any] = st.one_of(
    *(st.builds(variant, value=text) for variant in _STRING_VARIANTS),
    st.builds(gt.Done, usage=usage),
    st.builds(gt.ImageExceedsBatchSize, image_tokens=u64, n_batch=i32),
    st.builds(gt.ToolCallParsed, value=st.lists(tool_call, max_size=3)),
    st.builds(gt.ToolCallValidationFailed, value=st.lists(text, max_size=3)),
    st.builds(gt.UnrecognizedToolCallFormat, text=text, ffi_error_message=text),
)

_MODEL_PATH_VARIANTS = [
    variant
    for variant in AGENT_ISSUE_VARIANTS
    if variant not in (ChatTemplateDoesNotCompile, HuggingFaceCannotAcquireLock, SlotCannotStart)
]
model_path = st.builds(ModelPath, model_path=text)

agent_issues: st.SearchStrategy[Any] = st.one_of(
    *(st.builds(variant, model_path=text) for variant in _MODEL_PATH_VARIANTS),
    st.builds(ChatTemplateDoesNotCompile, error=text, model_path=model_path, template_content=text),
    st.builds(HuggingFaceCannotAcquireLock, lock_path=text, model_path=model_path),
    st.builds(SlotCannotStart, error=text, slot_index=u32),
)

inference_parameters = st.builds(
    InferenceParameters,
    n_batch=u64,
    context_size=u32,
    embedding_batch_size=u64,
    enable_embeddings=st.booleans(),
    image_resize_to_fit=u32,
    k_cache_dtype=st.sampled_from(["F32", "F16", "BF16", "Q8_0", "Q4_0", "IQ4_NL"]),
    v_cache_dtype=st.sampled_from(["Q4_1", "Q5_0", "Q5_1", "Q8_0"]),
    min_p=f32,
    n_gpu_layers=i32,
    penalty_frequency=f32,
    penalty_last_n=i32,
    penalty_presence=f32,
    penalty_repeat=f32,
    pooling_type=st.sampled_from(["Unspecified", "None", "Mean", "Cls", "Last", "Rank"]),
    temperature=f32,
    top_k=i32,
    top_p=f32,
)


@settings(max_examples=150, deadline=None)
@given(generated_token_results)
def test_generated_token_results_round_trip(result: gt.GeneratedTokenResult) -> None:
    adapter = codec.adapter_for(gt.GeneratedTokenResult)
    assert codec.decode(adapter, codec.encode(adapter, result)) == result


@settings(max_examples=100, deadline=None)
@given(generated_token_results, st.none() | text, text)
def test_response_envelopes_round_trip(
    result: gt.GeneratedTokenResult, generated_by: str | None, request_id: str
) -> None:
    message: InferenceServerMessage = ResponseEnvelope(
        generated_by=generated_by, request_id=request_id, response=GeneratedToken(value=result)
    )
    assert decode_inference_server_message(encode_inference_server_message(message)) == message


@settings(max_examples=100, deadline=None)
@given(agent_issues)
def test_agent_issues_round_trip(issue: AgentIssue) -> None:
    adapter = codec.adapter_for(AgentIssue)
    assert codec.decode(adapter, codec.encode(adapter, issue)) == issue


@settings(max_examples=100, deadline=None)
@given(inference_parameters)
def test_inference_parameters_round_trip(parameters: InferenceParameters) -> None:
    adapter = codec.adapter_for(InferenceParameters)
    assert codec.decode(adapter, codec.encode(adapter, parameters)) == parameters
