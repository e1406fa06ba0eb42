"""A model trained on class indices with display names answers with the names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from server_helpers import bundler_config, serve

DEMO_MODEL = Path(__file__).resolve().parents[2] / "resources" / "demo" / "wine_classifier.onnx"

pytestmark = pytest.mark.anyio


async def test_the_demo_answers_class_names_consistent_with_its_probabilities(tmp_path):
    model = tmp_path / "wine_classifier.onnx"
    shutil.copyfile(DEMO_MODEL, model)
    config = bundler_config(model, {}, "wine_classifier")  # names come from the model metadata
    async with serve(config, tmp_path) as (_app, client):
        features = [13.0, 2.3, 2.4, 19.5, 99.7, 2.3, 2.0, 0.36, 1.6, 5.1, 0.96, 2.6, 747.0]
        reply = await client.post("/predict", content=json.dumps({"features": features}))
        assert reply.status_code == 200, reply.text
        answer = reply.json()
        assert answer["label"] in ("class_0", "class_1", "class_2")
        assert answer["label"] == max(answer["probabilities"], key=answer["probabilities"].get)
