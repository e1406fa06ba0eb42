"""End-to-end fixtures: real models, real servers, real HTTP; Docker when an engine answers."""

import os

import pytest

from studio.core.artifacts import load
from studio.core.runtimes.docker import engine_status


def pytest_collection_modifyitems(config, items):
    """Docker tests need an engine and a base image that exists locally (./dev test makes both)."""
    status = engine_status()
    base = os.environ.get("SLIPWAY_TEST_BASE_IMAGE")
    for item in items:
        if "docker" in item.keywords:
            if not status.available:
                item.add_marker(pytest.mark.skip(reason=f"no Docker engine: {status.reason}"))
            elif not base and "needs_base_image" in item.keywords:
                item.add_marker(pytest.mark.skip(reason="SLIPWAY_TEST_BASE_IMAGE is not set "
                                                        "(./dev test builds one)"))


@pytest.fixture(scope="session")
def base_image():
    return os.environ.get("SLIPWAY_TEST_BASE_IMAGE", "slipway/python:3.11-bookworm")


@pytest.fixture(scope="session")
def iris_artifact(sklearn_models):
    return load(sklearn_models["logreg_iris"].path, trust=True)
