"""Chat templates: compile once per model load, render once per conversation request.

Paddler renders with minijinja; we use Jinja2 configured the way HuggingFace transformers does
(``ImmutableSandboxedEnvironment``, ``trim_blocks``, ``lstrip_blocks``, ``loopcontrols``), since
GGUF templates are written for transformers. Deliberate differences from Paddler:

* ``tojson`` is Python's ``json.dumps`` and accepts ``ensure_ascii``, ``sort_keys`` and
  ``separators`` (Paddler rejects them); it does not HTML-escape.
* Any access to an unsafe attribute (``__class__``, ``mro``, …) fails the render at once, rather
  than yielding an undefined value that only fails when used.
"""

from __future__ import annotations

import json
import operator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, NoReturn

import jinja2
import jinja2.ext
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from paddler_tui.protocol.conversation import ConversationMessage, TextPart

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from jinja2.runtime import Context, Undefined

MEDIA_MARKER: Final = "<__media__>"
"""What llama.cpp's multimodal tokenizer replaces with image embeddings."""

# Bounds for the operators the sandbox intercepts: a template must not be able to allocate
# gigabytes with ``'x' * 10**10`` or burn the CPU on ``9 ** 9 ** 9``.
_MAX_REPEATED_LENGTH: Final = 1_000_000
_MAX_POWER_EXPONENT: Final = 1_000


class ChatTemplateError(Exception):
    """Base for template failures; ``message`` is the text reported to the client or balancer."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ChatTemplateCompileError(ChatTemplateError):
    """The template source does not parse (becomes the ``ChatTemplateDoesNotCompile`` issue)."""


class ChatTemplateRenderError(ChatTemplateError):
    """Rendering failed (becomes the ``ChatTemplateError`` token result)."""


class _TemplateRaisedError(Exception):
    """Raised by the template's own ``raise_exception(msg)``."""


def _raise_exception(message: object) -> NoReturn:
    raise _TemplateRaisedError(str(message))


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(
    value: Any,
    indent: int | str | None = None,
    ensure_ascii: bool = False,
    sort_keys: bool = False,
    separators: Sequence[str] | None = None,
) -> str:
    # Jinja's own ``tojson`` HTML-escapes ``<>&'``, which would corrupt prompts.
    return json.dumps(
        value,
        indent=indent,
        ensure_ascii=ensure_ascii,
        sort_keys=sort_keys,
        separators=None if separators is None else (separators[0], separators[1]),
    )


def _repeat_length(left: Any, right: Any) -> int | None:
    for sequence, count in ((left, right), (right, left)):
        if isinstance(sequence, (str, list, tuple)) and isinstance(count, int):
            return len(sequence) * count
    return None


class _ChatTemplateEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe"
        )

    def call_binop(self, context: Context, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "*":
            length = _repeat_length(left, right)
            if length is not None and length > _MAX_REPEATED_LENGTH:
                raise SecurityError(f"repetition result too long ({length} items)")
            return operator.mul(left, right)
        if operator_name == "**":
            if isinstance(right, int) and abs(right) > _MAX_POWER_EXPONENT:
                raise SecurityError(f"exponent {right} is too large")
            return operator.pow(left, right)
        return super().call_binop(context, operator_name, left, right)


def _make_environment() -> _ChatTemplateEnvironment:
    environment = _ChatTemplateEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[jinja2.ext.loopcontrols],
    )
    environment.filters["tojson"] = _tojson
    environment.globals["raise_exception"] = _raise_exception
    environment.globals["strftime_now"] = _strftime_now
    return environment


_ENVIRONMENT: Final = _make_environment()


def _describe(error: BaseException) -> str:
    if isinstance(error, jinja2.TemplateSyntaxError):
        return f"{error.message} (line {error.lineno})"
    if isinstance(error, jinja2.TemplateError):
        return str(error.message or type(error).__name__)
    return f"{type(error).__name__}: {error}"


class ChatTemplate:
    """A compiled chat template. Compile with :meth:`compile`; rendering is thread-safe."""

    def __init__(self, source: str, template: jinja2.Template) -> None:
        self.source = source
        self._template = template

    @classmethod
    def compile(cls, source: str) -> ChatTemplate:
        try:
            template = _ENVIRONMENT.from_string(source)
        except jinja2.TemplateError as error:
            raise ChatTemplateCompileError(_describe(error)) from error
        return cls(source, template)

    def render(
        self,
        *,
        messages: Sequence[Mapping[str, Any]],
        add_generation_prompt: bool,
        enable_thinking: bool,
        tools: Sequence[Mapping[str, Any]],
        bos_token: str,
        eos_token: str,
        nl_token: str = "\n",
    ) -> str:
        context = {
            "messages": [_template_message(message) for message in messages],
            "add_generation_prompt": add_generation_prompt,
            "enable_thinking": enable_thinking,
            "tools": [dict(tool) for tool in tools],
            "bos_token": bos_token,
            "eos_token": eos_token,
            "nl_token": nl_token,
        }
        try:
            return self._template.render(context)
        except _TemplateRaisedError as error:
            raise ChatTemplateRenderError(
                f"Model's chat template raised an exception: '{error}'"
            ) from error
        # A template can fail in arbitrary ways (TypeError from tojson, ZeroDivisionError,
        # RecursionError, …); all of them are the request's render failure, not an agent crash.
        except Exception as error:
            raise ChatTemplateRenderError(_describe(error)) from error


def _template_part(part: Mapping[str, Any]) -> dict[str, Any]:
    if part.get("type") == "text":
        return {"type": "text", "text": part.get("text", "")}
    # Images (``image_url``) reach the model as embeddings spliced in at the media marker.
    return {"type": "text", "text": MEDIA_MARKER}


def _template_message(message: Mapping[str, Any]) -> dict[str, Any]:
    converted = dict(message)
    content = converted.get("content")
    if isinstance(content, list):
        converted["content"] = [_template_part(part) for part in content]
    return converted


def conversation_to_template_messages(
    messages: Iterable[ConversationMessage | Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Turn conversation messages (wire models or plain dicts) into the ``messages`` variable.

    Each becomes ``{"role", "content"}`` where ``content`` is a string or a list of text parts;
    image parts become text parts holding :data:`MEDIA_MARKER`.
    """
    converted: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, ConversationMessage):
            content: str | list[dict[str, Any]]
            if isinstance(message.content, str):
                content = message.content
            else:
                content = [
                    {"type": "text", "text": part.text}
                    if isinstance(part, TextPart)
                    else {"type": "text", "text": MEDIA_MARKER}
                    for part in message.content
                ]
            converted.append({"role": message.role, "content": content})
        else:
            converted.append(_template_message(message))
    return converted
