"""End-to-end fixtures: real models, real servers, real HTTP."""

import pytest

from studio.core.model.artifact import load


@pytest.fixture(scope="session")
def iris_artifact(sklearn_models):
    return load(sklearn_models["logreg_iris"].path, trust=True)
