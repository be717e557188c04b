"""Every JSON example of spec sections 2, 3 and 6 decodes and encodes back to the same JSON."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from paddler_tui.protocol import codec
from paddler_tui.protocol.agent_issue import AgentIssue
from paddler_tui.protocol.agent_socket import (
    AgentToBalancerMessage,
    BalancerToAgentMessage,
    decode_agent_to_balancer_message,
    decode_balancer_to_agent_message,
    encode_agent_to_balancer_message,
    encode_balancer_to_agent_message,
)
from paddler_tui.protocol.agent_status import (
    AgentControllerPoolSnapshot,
    AgentControllerSnapshot,
    AgentStateApplicationStatus,
    BufferedRequestsSnapshot,
    ModelMetadata,
    SlotAggregatedStatusSnapshot,
)
from paddler_tui.protocol.conversation import ConversationMessage
from paddler_tui.protocol.desired_state import AgentDesiredState, BalancerDesiredState, ChatTemplate
from paddler_tui.protocol.embedding import (
    Embedding,
    EmbeddingInputDocument,
    EmbeddingNormalizationMethod,
    EmbeddingResult,
)
from paddler_tui.protocol.generated_token import GeneratedTokenResult, ParsedToolCall
from paddler_tui.protocol.grammar import GrammarConstraint
from paddler_tui.protocol.inference_parameters import InferenceParameters
from paddler_tui.protocol.inference_socket import (
    InferenceClientMessage,
    InferenceServerMessage,
    decode_inference_client_message,
    decode_inference_server_message,
    encode_inference_client_message,
    encode_inference_server_message,
)
from paddler_tui.protocol.model_source import AgentDesiredModel
from paddler_tui.protocol.requests import (
    ContinueFromConversationHistoryParams,
    ContinueFromRawPromptParams,
    GenerateEmbeddingBatchParams,
)
from paddler_tui.protocol.tool import TaggedTool
from paddler_tui.protocol.usage import GenerationSummary, TokenUsage

# Spec 2.3 layout, re-wrapped to fit the line length.
DEFAULT_INFERENCE_PARAMETERS = """{ "n_batch": 2048, "context_size": 8192,
    "embedding_batch_size": 256, "enable_embeddings": false, "image_resize_to_fit": 1024,
    "k_cache_dtype": "Q8_0",
    "v_cache_dtype": "Q8_0", "min_p": 0.05, "n_gpu_layers": 0, "penalty_frequency": 0.0,
    "penalty_last_n": -1, "penalty_presence": 0.8, "penalty_repeat": 1.1, "pooling_type": "Last",
    "temperature": 0.8, "top_k": 80, "top_p": 0.8 }"""

# Spec 2.3, verbatim: this is exactly the default state.
DEFAULT_BALANCER_DESIRED_STATE = (
    """{
  "chat_template_override": null,
  "inference_parameters": """
    + DEFAULT_INFERENCE_PARAMETERS
    + """,
  "model": "None",
  "multimodal_projection": "None",
  "use_chat_template_override": false
}"""
)

USAGE = (
    '{"prompt_tokens":12,"cached_prompt_tokens":0,"input_image_tokens":0,"input_audio_tokens":0,'
    '"content_tokens":34,"reasoning_tokens":5,"tool_call_tokens":0,"undeterminable_tokens":0}'
)

TOOL = (
    '{"type": "function", "function": {"name": "get_weather", "description": "Current weather",'
    ' "parameters": {"type": "object", "properties": {"location": {"type": "string"}},'
    ' "required": ["location"], "additionalProperties": false}}}'
)

MESSAGES = [
    '{"role": "user", "content": "text"}',
    '{"role": "user", "content": ['
    '{"type": "text", "text": "Describe this"},'
    '{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}',
]

ISSUES = [
    *(
        f'{{"{tag}": {{"model_path": "/models/m.gguf"}}}}'
        for tag in (
            "CacheCannotAcquireLock",
            "CacheDirectoryIsNotWritable",
            "CacheStorageIsFull",
            "DownloadInterrupted",
            "DownloadServerDeniedAccess",
            "DownloadServerErrored",
            "DownloadServerIsUnreachable",
            "DownloadServerRejectedRequest",
            "DownloadUrlIsMalformed",
            "HuggingFaceModelDoesNotExist",
            "HuggingFacePermissions",
            "ModelCacheIsCorrupted",
            "ModelCannotBeLoaded",
            "ModelDoesNotExistAtUrl",
            "ModelFileDoesNotExist",
            "MultimodalProjectionCannotBeLoaded",
            "UnableToFindChatTemplate",
        )
    ),
    '{"ChatTemplateDoesNotCompile": {"error": "unexpected end of input",'
    ' "model_path": {"model_path": "/models/m.gguf"}, "template_content": "{% if %}"}}',
    '{"HuggingFaceCannotAcquireLock": {"lock_path": "/hf/.locks/x.lock",'
    ' "model_path": {"model_path": "Qwen/Qwen3-0.6B-GGUF/Qwen3-0.6B-Q8_0.gguf"}}}',
    '{"SlotCannotStart": {"error": "failed to create context", "slot_index": 0}}',
]

SLOT_SNAPSHOT = (
    '{"desired_slots_total":4,"download_current":0,"download_filename":null,'
    '"download_indeterminate":true,"download_total":0,'
    '"issues":[{"ModelFileDoesNotExist":{"model_path":"/m.gguf"}},'
    '{"SlotCannotStart":{"error":"boom","slot_index":1}}],'
    '"model_path":"/m.gguf","slots_processing":1,"slots_total":4,'
    '"state_application_status":"Applied","uses_chat_template_override":false,"version":7}'
)

AGENT_SNAPSHOT = (
    '{"desired_slots_total":4,"download_current":100,"download_filename":"m.gguf",'
    '"download_indeterminate":false,"download_total":1000,"id":"V1StGXR8_Z5jdHi6B-myT",'
    '"issues":[],"model_path":null,"name":"agent-1","slots_processing":0,"slots_total":0,'
    '"state_application_status":"Fresh","uses_chat_template_override":true}'
)

GENERATED_TOKEN_RESULTS = [
    '{"ContentToken": "Hi"}',
    '{"ReasoningToken": "Let"}',
    '{"ToolCallToken": "<tool_call>"}',
    '{"UndeterminableToken": "<"}',
    '{"ToolCallParsed": [{"id": "call_0", "name": "get_weather",'
    ' "arguments": {"ValidJson": {"location": "NYC"}}},'
    ' {"id": "call_1", "name": "f", "arguments": {"InvalidJson": "{not json"}}]}',
    '{"ToolCallParseFailed": "parser error"}',
    '{"ToolCallValidationFailed": ["unknown tool name \\"x\\""]}',
    '{"UnrecognizedToolCallFormat": {"text": "<call>", "ffi_error_message": "no format"}}',
    f'{{"Done": {{"usage": {USAGE}}}}}',
    '{"ChatTemplateError": "agent-1: failed to render chat template: boom"}',
    '{"DetokenizationFailed": "bad utf-8"}',
    '{"GrammarIncompatibleWithThinking":'
    ' "Grammar constraints are incompatible with thinking mode"}',
    '{"GrammarInitializationFailed": "init"}',
    '{"GrammarRejectedModelOutput": "rejected"}',
    '{"GrammarSyntaxError": "Failed to create grammar sampler: x"}',
    '{"ImageDecodingFailed": "Remote image URLs are not supported."}',
    '{"ImageExceedsBatchSize": {"image_tokens": 4096, "n_batch": 2048}}',
    '{"MultimodalNotSupported": "no mmproj"}',
    '{"SamplerError": "no available sequence slots, all slots are busy"}',
    '{"TokenGenerationDisabled":'
    ' "Token generation is disabled while the cluster is configured for embeddings"}',
    '{"ToolSchemaInvalid": "tool \\"x\\" parameters are not a valid JSON Schema: y"}',
]

EMBEDDING = (
    '{"embedding": [0.0078, -0.25, 1.0], "normalization_method": "L2",'
    ' "pooling_type": "Last", "source_document_id": "doc-1"}'
)

EMBEDDING_RESULTS = [
    f'{{"Embedding": {EMBEDDING}}}',
    '{"DocumentExceedsBatchSize": {"document_tokens": 3000, "n_batch": 2048,'
    ' "source_document_id": "doc-2"}}',
    '"Done"',
    '"EmbeddingsDisabled"',
    '"EmbeddingRejectedDueToActiveTokenGeneration"',
    '"NoEmbeddingsProduced"',
    '{"Error": "never emitted"}',
]

CONVERSATION_BODY = (
    '{"add_generation_prompt": true,'
    ' "conversation_history": [{"role": "system", "content": "You are terse."},'
    ' {"role": "user", "content": "Hello"}],'
    ' "enable_thinking": false, "max_tokens": 400, "grammar": null,'
    ' "parse_tool_calls": false, "tools": []}'
)

RAW_PROMPT_BODY = '{"max_tokens": 400, "raw_prompt": "Once upon a time", "grammar": null}'

EMBEDDING_BODY = (
    '{"input_batch": [{"id": "1", "content": "first"}, {"id": "2", "content": "second"}],'
    ' "normalization_method": "L2"}'
)

REQUEST_ID = "V1StGXR8_Z5jdHi6B-myT"

# Spec 3.3, verbatim: serde output, so even the key order must match byte for byte.
NDJSON_STREAM = [
    '{"Response":{"generated_by":"agent-1","request_id":"V1StGXR8_Z5jdHi6B-myT",'
    '"response":{"GeneratedToken":{"ReasoningToken":"Let"}}}}',
    '{"Response":{"generated_by":"agent-1","request_id":"V1StGXR8_Z5jdHi6B-myT",'
    '"response":{"GeneratedToken":{"ContentToken":"Hello"}}}}',
    '{"Response":{"generated_by":"agent-1","request_id":"V1StGXR8_Z5jdHi6B-myT",'
    '"response":{"GeneratedToken":{"Done":{"usage":' + USAGE + "}}}}}",
]

SERVER_MESSAGES = [
    *NDJSON_STREAM,
    # 3.5 example line and final Done.
    '{"Response":{"generated_by":"agent-1","request_id":"x8kQ2","response":{"Embedding":'
    '{"Embedding":{"embedding":[0.0078,0.5],"normalization_method":"L2","pooling_type":"Last",'
    '"source_document_id":"1"}}}}}',
    '{"Response":{"generated_by":null,"request_id":"' + REQUEST_ID + '",'
    '"response":{"Embedding":"Done"}}}',
    # 3.1 envelopes.
    '{"Error": {"request_id": "' + REQUEST_ID + '", "error": {"code": 504,'
    ' "description": "Waiting for available slot timed out"}}}',
    '{"Error": {"request_id": "req-1", "error": {"code": 400,'
    ' "description": "Request id \\"req-1\\" is already in flight on this connection"}}}',
    '{"Notification": "TokenGenerationDisabled"}',
    '{"Notification": "TokenGenerationEnabled"}',
    '{"Response": {"generated_by": null, "request_id": "r", "response": "Timeout"}}',
    '{"Response": {"generated_by": null, "request_id": "r",'
    ' "response": "TooManyBufferedRequests"}}',
    # 3.6 requests while token generation is disabled.
    '{"Response":{"generated_by":null,"request_id":"req-1","response":{"GeneratedToken":'
    '{"TokenGenerationDisabled":"Token generation is disabled while the cluster is configured'
    ' for embeddings"}}}}',
    *(
        '{"Response": {"generated_by": "agent-1", "request_id": "r",'
        f' "response": {{"GeneratedToken": {result}}}}}}}'
        for result in GENERATED_TOKEN_RESULTS
    ),
    *(
        '{"Response": {"generated_by": "agent-1", "request_id": "r",'
        f' "response": {{"Embedding": {result}}}}}}}'
        for result in EMBEDDING_RESULTS
    ),
]

# The raw prompt request of spec 3.6 omits ``grammar``, which goes out again as null.
RAW_PROMPT_REQUEST = (
    '{"Request": {"id": "req-2", "request": {"ContinueFromRawPrompt":'
    ' {"max_tokens": 100, "raw_prompt": "Hi"}}}}'
)

CLIENT_MESSAGES = [
    '{"Request": {"id": "req-1", "request": {"ContinueFromConversationHistory": '
    + CONVERSATION_BODY
    + "}}}",
    '{"Request": {"id": "req-3", "request": {"GenerateEmbeddingBatch": ' + EMBEDDING_BODY + "}}}",
    '{"Notification": {"StopRespondingTo": "req-1"}}',
    '{"Error": {"request_id": "req-1", "error": {"code": 1, "description": "client side"}}}',
]

AGENT_DESIRED_STATE = (
    '{"chat_template_override": {"content": "{{ messages }}"}, "inference_parameters": '
    + DEFAULT_INFERENCE_PARAMETERS
    + ', "model": {"HuggingFace": {"filename": "Qwen3-0.6B-Q8_0.gguf",'
    ' "repo_id": "Qwen/Qwen3-0.6B-GGUF", "revision": "main"}},'
    ' "multimodal_projection": "None"}'
)

TO_AGENT_MESSAGES = [
    '{"Notification": {"Version": {"version": "4.1.0"}}}',
    '{"Notification": {"SetState": {"desired_state": ' + AGENT_DESIRED_STATE + "}}}",
    '{"Notification": {"StopRespondingTo": "' + REQUEST_ID + '"}}',
    '{"Request": {"id": "'
    + REQUEST_ID
    + '", "request": {"ContinueFromConversationHistory": {"add_generation_prompt": true,'
    ' "conversation_history": [{"content": "Weather?", "role": "user"}], "enable_thinking": true,'
    ' "grammar": {"type": "gbnf", "grammar": "root ::= [0-9]+", "root": "root"},'
    ' "max_tokens": 100, "parse_tool_calls": true, "tools": ['
    + TOOL
    + ', {"type": "function", "function": {"name": "now", "description": "Time"}}]}}}}',
    '{"Request": {"id": "'
    + REQUEST_ID
    + '", "request": {"ContinueFromRawPrompt": {"grammar": null, "max_tokens": 100,'
    ' "raw_prompt": "Hello"}}}}',
    '{"Request": {"id": "'
    + REQUEST_ID
    + '", "request": {"GenerateEmbeddingBatch": '
    + EMBEDDING_BODY
    + "}}}",
    '{"Request": {"id": "4f3Y9_qKz-1mNbV2cXw7A", "request": "GetChatTemplateOverride"}}',
    '{"Request": {"id": "4f3Y9_qKz-1mNbV2cXw7A", "request": "GetModelMetadata"}}',
    '{"Error": {"request_id": "x", "error": {"code": 500, "description": "logged only"}}}',
]

FROM_AGENT_MESSAGES = [
    '{"Notification": {"RegisterAgent": {"name": "agent-1",'
    ' "slot_aggregated_status_snapshot": ' + SLOT_SNAPSHOT + "}}}",
    '{"Notification": {"RegisterAgent": {"name": null,'
    ' "slot_aggregated_status_snapshot": ' + SLOT_SNAPSHOT + "}}}",
    '{"Notification": {"UpdateAgentStatus": {"slot_aggregated_status_snapshot": '
    + SLOT_SNAPSHOT
    + "}}}",
    '{"Notification": "DeregisterAgent"}',
    '{"Response": {"generated_by": null, "request_id": "'
    + REQUEST_ID
    + '", "response": {"GeneratedToken": {"ContentToken": "Hi"}}}}',
    '{"Response": {"generated_by": null, "request_id": "'
    + REQUEST_ID
    + '", "response": {"Embedding": '
    + EMBEDDING_RESULTS[0]
    + "}}}",
    '{"Response": {"generated_by": null, "request_id": "q", "response":'
    ' {"ChatTemplateOverride": null}}}',
    '{"Response": {"generated_by": null, "request_id": "q", "response":'
    ' {"ChatTemplateOverride": {"content": "{{ bos_token }}"}}}}',
    '{"Response": {"generated_by": null, "request_id": "q", "response":'
    ' {"ModelMetadata": {"metadata": {"general.architecture": "qwen3",'
    ' "tokenizer.chat_template": "{{ messages }}"}}}}}',
    '{"Response": {"generated_by": null, "request_id": "q", "response": {"ModelMetadata": null}}}',
    '{"Error": {"request_id": "q", "error": {"code": 500, "description": "agent error"}}}',
]

TYPED_EXAMPLES: list[tuple[Any, str]] = [
    (InferenceParameters, DEFAULT_INFERENCE_PARAMETERS),
    (BalancerDesiredState, DEFAULT_BALANCER_DESIRED_STATE),
    (
        BalancerDesiredState,
        '{"chat_template_override": {"content": "{{ messages }}"}, "inference_parameters": '
        + DEFAULT_INFERENCE_PARAMETERS
        + ', "model": {"LocalToAgent": "/path/to/model.gguf"},'
        ' "multimodal_projection": {"Url": {"url": "https://example.com/mmproj.gguf"}},'
        ' "use_chat_template_override": true}',
    ),
    (AgentDesiredState, AGENT_DESIRED_STATE),
    (
        AgentDesiredModel,
        '{"HuggingFace": {"filename": "Qwen3-0.6B-Q8_0.gguf", "repo_id": "Qwen/Qwen3-0.6B-GGUF",'
        ' "revision": "main"}}',
    ),
    (AgentDesiredModel, '{"LocalToAgent": "/path/to/model.gguf"}'),
    (AgentDesiredModel, '{"Url": {"url": "https://example.com/m.gguf"}}'),
    (AgentDesiredModel, '"None"'),
    (ChatTemplate, '{"content": "<jinja source>"}'),
    *((ConversationMessage, message) for message in MESSAGES),
    (GrammarConstraint, '{"type": "gbnf", "grammar": "root ::= [0-9]+", "root": "root"}'),
    (GrammarConstraint, '{"type": "json_schema", "schema": "{\\"type\\":\\"object\\"}"}'),
    (TaggedTool, TOOL),
    (GenerationSummary, f'{{"usage": {USAGE}}}'),
    (TokenUsage, USAGE),
    (
        ParsedToolCall,
        '{"id": "call_0", "name": "get_weather", "arguments": {"ValidJson": {"location": "NYC"}}}',
    ),
    (ParsedToolCall, '{"id": "call_0", "name": "f", "arguments": {"InvalidJson": "{oops"}}'),
    (EmbeddingInputDocument, '{"content": "Paddler balances llama.cpp", "id": "doc-1"}'),
    (EmbeddingNormalizationMethod, '"L2"'),
    (EmbeddingNormalizationMethod, '"None"'),
    (EmbeddingNormalizationMethod, '{"RmsNorm": {"epsilon": 0.001}}'),
    (Embedding, EMBEDDING),
    *((AgentIssue, issue) for issue in ISSUES),
    *((GeneratedTokenResult, result) for result in GENERATED_TOKEN_RESULTS),
    *((EmbeddingResult, result) for result in EMBEDDING_RESULTS),
    *(
        (AgentStateApplicationStatus, f'"{status}"')
        for status in ("Applied", "AttemptedAndNotAppliable", "AttemptedAndRetrying", "Fresh")
    ),
    (AgentStateApplicationStatus, '"Stuck"'),
    (SlotAggregatedStatusSnapshot, SLOT_SNAPSHOT),
    (AgentControllerSnapshot, AGENT_SNAPSHOT),
    (AgentControllerPoolSnapshot, '{"agents": [' + AGENT_SNAPSHOT + "]}"),
    (AgentControllerPoolSnapshot, '{"agents": []}'),
    (ModelMetadata, '{"metadata": {"general.architecture": "qwen3", "general.name": "Qwen3"}}'),
    (BufferedRequestsSnapshot, '{"buffered_requests_current": 0}'),
    (ContinueFromConversationHistoryParams, CONVERSATION_BODY),
    (ContinueFromRawPromptParams, RAW_PROMPT_BODY),
    (GenerateEmbeddingBatchParams, EMBEDDING_BODY),
]


def _canonical(text: str | bytes) -> Any:
    return orjson.loads(text)


@pytest.mark.parametrize(("tp", "text"), TYPED_EXAMPLES)
def test_shared_types_round_trip(tp: Any, text: str) -> None:
    adapter = codec.adapter_for(tp)
    value = codec.decode(adapter, text)
    assert _canonical(codec.encode(adapter, value)) == _canonical(text)


@pytest.mark.parametrize("text", SERVER_MESSAGES)
def test_inference_server_messages_round_trip(text: str) -> None:
    message: InferenceServerMessage = decode_inference_server_message(text)
    assert _canonical(encode_inference_server_message(message)) == _canonical(text)


@pytest.mark.parametrize("text", CLIENT_MESSAGES)
def test_inference_client_messages_round_trip(text: str) -> None:
    message: InferenceClientMessage = decode_inference_client_message(text)
    assert _canonical(encode_inference_client_message(message)) == _canonical(text)


def test_omitted_grammar_goes_out_as_null() -> None:
    message = decode_inference_client_message(RAW_PROMPT_REQUEST)
    expected = _canonical(RAW_PROMPT_REQUEST)
    expected["Request"]["request"]["ContinueFromRawPrompt"]["grammar"] = None
    assert _canonical(encode_inference_client_message(message)) == expected


@pytest.mark.parametrize("text", TO_AGENT_MESSAGES)
def test_balancer_to_agent_messages_round_trip(text: str) -> None:
    message: BalancerToAgentMessage = decode_balancer_to_agent_message(text)
    assert _canonical(encode_balancer_to_agent_message(message)) == _canonical(text)


@pytest.mark.parametrize("text", FROM_AGENT_MESSAGES)
def test_agent_to_balancer_messages_round_trip(text: str) -> None:
    message: AgentToBalancerMessage = decode_agent_to_balancer_message(text)
    assert _canonical(encode_agent_to_balancer_message(message)) == _canonical(text)


@pytest.mark.parametrize("line", NDJSON_STREAM)
def test_ndjson_stream_lines_are_byte_identical(line: str) -> None:
    encoded = encode_inference_server_message(decode_inference_server_message(line))
    assert encoded == line.encode()


def test_default_balancer_desired_state_is_the_spec_json() -> None:
    adapter = codec.adapter_for(BalancerDesiredState)
    encoded = codec.encode(adapter, BalancerDesiredState.default())
    assert encoded == orjson.dumps(orjson.loads(DEFAULT_BALANCER_DESIRED_STATE))
    assert codec.decode(adapter, DEFAULT_BALANCER_DESIRED_STATE) == BalancerDesiredState.default()


def test_default_inference_parameters_keep_declaration_order() -> None:
    encoded = codec.encode(codec.adapter_for(InferenceParameters), InferenceParameters.default())
    assert list(orjson.loads(encoded)) == list(orjson.loads(DEFAULT_INFERENCE_PARAMETERS))


def test_keys_follow_rust_declaration_order() -> None:
    # The docs list role first and grammar last; Rust declares content and grammar earlier.
    message = codec.decode(codec.adapter_for(ConversationMessage), MESSAGES[0])
    assert codec.encode(codec.adapter_for(ConversationMessage), message) == (
        b'{"content":"text","role":"user"}'
    )
    params = codec.decode(codec.adapter_for(ContinueFromRawPromptParams), RAW_PROMPT_BODY)
    assert list(codec.to_jsonable(codec.adapter_for(ContinueFromRawPromptParams), params)) == [
        "grammar",
        "max_tokens",
        "raw_prompt",
    ]
    snapshot = codec.decode(codec.adapter_for(AgentControllerSnapshot), AGENT_SNAPSHOT)
    encoded = codec.encode(codec.adapter_for(AgentControllerSnapshot), snapshot)
    assert list(orjson.loads(encoded)) == list(orjson.loads(AGENT_SNAPSHOT))


def test_to_agent_desired_state_applies_override_only_when_enabled() -> None:
    template = ChatTemplate(content="{{ messages }}")
    state = BalancerDesiredState.default().model_copy(update={"chat_template_override": template})
    assert state.to_agent_desired_state().chat_template_override is None
    enabled = state.model_copy(update={"use_chat_template_override": True})
    agent_state = enabled.to_agent_desired_state()
    assert agent_state.chat_template_override == template
    assert agent_state.inference_parameters == state.inference_parameters
    jsonable = codec.to_jsonable(codec.adapter_for(AgentDesiredState), agent_state)
    assert list(jsonable) == [
        "chat_template_override",
        "inference_parameters",
        "model",
        "multimodal_projection",
    ]


def test_model_metadata_keys_go_out_sorted() -> None:
    metadata = ModelMetadata(metadata={"z": "1", "a": "2", "general.name": "3"})
    encoded = codec.encode(codec.adapter_for(ModelMetadata), metadata)
    assert encoded == b'{"metadata":{"a":"2","general.name":"3","z":"1"}}'
