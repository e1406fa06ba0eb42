"""A registry in a temporary folder, and small real ONNX models that differ by one number."""

from __future__ import annotations

import pytest
from registry_models import tiny_onnx

from studio.core.model.artifact import load
from studio.core.versions.registry import Registry


@pytest.fixture
def registry(tmp_path) -> Registry:
    return Registry(tmp_path / "registry")


@pytest.fixture
def make_model(tmp_path):
    """make_model(offset, name="tiny") -> a loaded ModelArtifact of a fresh tiny ONNX file."""
    def make(offset: float, name: str = "tiny", folder: str = "models"):
        return load(tiny_onnx(tmp_path / folder / f"{name}.onnx", offset))
    return make
