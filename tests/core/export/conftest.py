"""What the export tests share: a served model's facts and the outside tools.

The checks run real tools (kubectl kustomize, docker-compose, Checkov). Where one is missing the
tests that need it are skipped, except in CI (SLIPWAY_REQUIRE_DOCKER=1, set by .ci/run), where
./dev test installs them and a missing one must fail the run instead of hiding the tests.
"""

from __future__ import annotations

import os

import pytest
from export_cases import SHA

from studio.core.export.facts import ServedModel
from studio.core.export.tools import Tool, find_checkov, find_compose, find_kustomize


def required(tool: Tool) -> Tool:
    if tool.command:
        return tool
    if os.environ.get("SLIPWAY_REQUIRE_DOCKER") == "1":
        pytest.fail(f"CI must have {tool.name}: {tool.detail}")
    pytest.skip(tool.detail)


@pytest.fixture(scope="session")
def kustomize_tool() -> Tool:
    return required(find_kustomize())


@pytest.fixture(scope="session")
def compose_tool() -> Tool:
    return required(find_compose())


@pytest.fixture(scope="session")
def checkov_tool() -> Tool:
    return required(find_checkov())


@pytest.fixture
def served() -> ServedModel:
    """A keyed model whose server pauses 2 s and drains for 20 s after SIGTERM."""
    return ServedModel(name="wine_classifier", version="3", sha256=SHA,
                       api_key_env="MODEL_API_KEY", ready_pause_s=2.0, drain_timeout_s=20.0)

