"""The inference-parameter editor's model: one field per ``InferenceParameters`` field.

Kinds and bounds come from the protocol model itself, so a field added there shows up here and is
checked by the same rules the balancer applies (Rust's integer ranges, finite ``f32``s, and the
PUT-only checks of :meth:`InferenceParameters.validation_error`).
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from paddler_tui.protocol.inference_parameters import InferenceParameters

FieldKind = Literal["int", "float", "bool", "choice"]

HELP: dict[str, str] = {
    "n_batch": "tokens per decode; a document must fit",
    "context_size": "tokens of context per slot",
    "embedding_batch_size": "documents per chunk sent to an agent",
    "enable_embeddings": "embeddings on, token generation off",
    "image_resize_to_fit": "longest image side in pixels",
    "k_cache_dtype": "KV cache key precision",
    "v_cache_dtype": "KV cache value precision",
    "min_p": "drop tokens below min_p times the best",
    "n_gpu_layers": "layers on the GPU (0: CPU only)",
    "penalty_frequency": "grows with a token's repetitions",
    "penalty_last_n": "tokens penalties see (-1: all)",
    "penalty_presence": "for any token already seen",
    "penalty_repeat": "repetition penalty (1.0: off)",
    "pooling_type": "token vectors → one embedding",
    "temperature": "sampling randomness (0: greedy)",
    "top_k": "sample from the k likeliest tokens",
    "top_p": "sample from this much probability",
}


@dataclass(frozen=True)
class ParameterField:
    name: str
    kind: FieldKind
    choices: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.name.replace("_", " ")

    @property
    def help(self) -> str:
        return HELP.get(self.name, "")


def _field(name: str, annotation: Any) -> ParameterField:
    if typing.get_origin(annotation) is Literal:
        return ParameterField(
            name, "choice", tuple(str(choice) for choice in typing.get_args(annotation))
        )
    if annotation is bool:
        return ParameterField(name, "bool")
    if annotation is int:
        return ParameterField(name, "int")
    if annotation is float:
        return ParameterField(name, "float")
    raise TypeError(f"no editor for {name}: {annotation!r}")  # pragma: no cover


PARAMETER_FIELDS: tuple[ParameterField, ...] = tuple(
    _field(name, info.annotation) for name, info in InferenceParameters.model_fields.items()
)
FIELDS_BY_NAME = {parameter.name: parameter for parameter in PARAMETER_FIELDS}


def _annotated(info: FieldInfo) -> Any:
    # The FieldInfo as metadata carries the field's bounds and validators.
    return Annotated[info.annotation, info]


# Each field's own type with its bounds, so every wrong field is reported at once.
_FIELD_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    name: TypeAdapter(_annotated(info)) for name, info in InferenceParameters.model_fields.items()
}

FormValue = str | bool


def form_values(parameters: InferenceParameters) -> dict[str, FormValue]:
    """What each editor shows for ``parameters``: text for numbers and choices, bool for flags."""
    values: dict[str, FormValue] = {}
    for parameter in PARAMETER_FIELDS:
        value = getattr(parameters, parameter.name)
        values[parameter.name] = value if parameter.kind == "bool" else _text(value)
    return values


def _text(value: object) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


@dataclass(frozen=True)
class ParsedParameters:
    parameters: InferenceParameters | None
    errors: dict[str, str]


def _convert(parameter: ParameterField, value: FormValue) -> Any:
    """The Python value of one editor's content; ``ValueError`` says why there is none."""
    if parameter.kind == "bool":
        if not isinstance(value, bool):
            raise ValueError("expected on or off")
        return value
    text = str(value).strip()
    if parameter.kind == "choice":
        if text not in parameter.choices:
            raise ValueError(f"expected one of {', '.join(parameter.choices)}")
        return text
    if parameter.kind == "int":
        try:
            return int(text)
        except ValueError:
            raise ValueError("expected a whole number") from None
    try:
        number = float(text)
    except ValueError:
        raise ValueError("expected a number") from None
    if not math.isfinite(number):
        raise ValueError("expected a finite number")
    return number


def parse_parameters(values: Mapping[str, FormValue]) -> ParsedParameters:
    """Every field's value, or an error message per field that is wrong."""
    errors: dict[str, str] = {}
    converted: dict[str, Any] = {}
    for parameter in PARAMETER_FIELDS:
        if parameter.name not in values:
            errors[parameter.name] = "missing"
            continue
        try:
            value = _convert(parameter, values[parameter.name])
            converted[parameter.name] = _FIELD_ADAPTERS[parameter.name].validate_python(value)
        except ValidationError as error:  # a ValueError too, so caught first
            errors[parameter.name] = _message(error.errors(include_url=False)[0])
        except ValueError as error:
            errors[parameter.name] = str(error)
    for name, value in converted.items():
        rule = _put_rule_error(name, value)
        if rule is not None:
            errors[name] = rule
    if errors:
        return ParsedParameters(None, errors)
    return ParsedParameters(InferenceParameters.model_validate(converted), {})


def _put_rule_error(name: str, value: Any) -> str | None:
    """The PUT-only rule a single field breaks (checked on the defaults with just that field
    changed, so each field is judged alone); its message without the field name."""
    probe = InferenceParameters.default().model_copy(update={name: value})
    invalid = probe.validation_error()
    if invalid is not None and invalid.startswith(f"{name} "):
        return invalid.removeprefix(f"{name} ")
    return None


def _message(item: Any) -> str:
    context = item.get("ctx") or {}
    if item["type"] == "greater_than_equal":
        return f"must be at least {context['ge']}"
    if item["type"] == "less_than_equal":
        return f"must be at most {context['le']}"
    return str(item["msg"]).removeprefix("Value error, ")
