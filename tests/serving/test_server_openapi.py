"""/openapi.json is a valid OpenAPI 3.1 document that names every feature; /docs shows it."""

from __future__ import annotations

import html
from html.parser import HTMLParser

import pytest
from openapi_spec_validator import validate
from server_helpers import IRIS_FEATURES

pytestmark = pytest.mark.anyio


async def _document(model, **changes):
    async with model.serve(**changes) as (_app, client):
        response = await client.get("/openapi.json")
        assert response.status_code == 200
        return response.json()


async def test_iris_document_names_every_feature(iris_logreg):
    document = await _document(iris_logreg)
    validate(document)
    assert document["openapi"] == "3.1.0"
    schemas = document["components"]["schemas"]
    properties = schemas["FeatureObject"]["properties"]
    assert list(properties) == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert schemas["FeatureObject"]["required"] == list(properties)
    assert schemas["FeatureObject"]["additionalProperties"] is False
    assert all(p["type"] == "number" for p in properties.values())
    assert properties["sepal_length"]["examples"] == [5.84]
    assert [item["title"] for item in schemas["FeatureList"]["prefixItems"]] == list(properties)
    assert schemas["FeatureList"]["minItems"] == schemas["FeatureList"]["maxItems"] == 4
    predict = document["paths"]["/predict"]["post"]
    assert predict["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PredictRequest"}
    example = predict["requestBody"]["content"]["application/json"]["examples"]["by name"]
    assert example["value"] == {"features": {"sepal_length": 5.84, "sepal_width": 3.06,
                                             "petal_length": 3.76, "petal_width": 1.2}}
    assert set(predict["responses"]) >= {"200", "400", "413", "422", "503"}
    label = schemas["Prediction"]["properties"]["label"]
    assert label["enum"] == ["setosa", "versicolor", "virginica"]
    assert list(schemas["Prediction"]["properties"]["probabilities"]["properties"]) == \
        ["setosa", "versicolor", "virginica"]
    assert schemas["BatchRequest"]["properties"]["instances"]["maxItems"] == 1024
    for path in ("/predict/batch", "/v2/models/{model_name}/infer", "/v2", "/v2/health/live",
                 "/v2/health/ready", "/v2/models/{model_name}", "/v2/models/{model_name}/ready",
                 "/health", "/ready", "/metrics"):
        assert path in document["paths"], path
    infer = document["paths"]["/v2/models/{model_name}/infer"]["post"]
    assert infer["parameters"][0]["schema"]["enum"] == ["iris"]
    sample = infer["requestBody"]["content"]["application/json"]["examples"]["sample"]["value"]
    assert sample == {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                  "data": [5.84, 3.06, 3.76, 1.2]}]}
    # The binary tensor data extension: bodies of JSON then raw bytes, both ways.
    assert "application/octet-stream" in infer["requestBody"]["content"]
    assert "application/octet-stream" in infer["responses"]["200"]["content"]
    assert "Inference-Header-Content-Length" in infer["responses"]["200"]["headers"]
    assert "binary_data_size" in infer["description"]
    assert {"name": "Inference-Header-Content-Length", "in": "header", "required": False,
            "description": "With binary tensor data after the JSON: the JSON's length in bytes "
                           "(without it, the whole body is JSON).",
            "schema": {"type": "integer", "minimum": 1}} in infer["parameters"]
    request_input = schemas["V2RequestInput"]
    assert request_input["required"] == ["name", "shape", "datatype"]
    assert request_input["properties"]["parameters"]["properties"]["binary_data_size"] == {
        "type": "integer", "minimum": 0,
        "description": "Bytes of this input's binary data after the JSON."}
    request = schemas["V2InferenceRequest"]["properties"]
    assert request["parameters"]["properties"]["binary_data_output"]["type"] == "boolean"
    assert request["outputs"]["items"]["properties"]["parameters"]["properties"][
        "binary_data"]["type"] == "boolean"


async def test_mixed_document_gives_types_and_categories(mixed_model):
    document = await _document(mixed_model)
    validate(document)
    properties = document["components"]["schemas"]["FeatureObject"]["properties"]
    assert properties["plan"]["type"] == "string"
    assert properties["plan"]["enum"] == ["basic", "plus", "pro"]
    assert properties["region"]["enum"] == ["east", "north", "south", "west"]
    assert properties["age"]["type"] == "number" and "enum" not in properties["age"]
    assert properties["monthly_spend"]["examples"] == [55.5]


async def test_tensor_model_document_has_only_v2(squeezenet):
    document = await _document(squeezenet)
    validate(document)
    assert "/predict" not in document["paths"] and "/predict/batch" not in document["paths"]
    assert "FeatureObject" not in document["components"]["schemas"]
    infer = document["paths"]["/v2/models/{model_name}/infer"]["post"]
    # 150528 zeros would make a useless example: there is none.
    assert "examples" not in infer["requestBody"]["content"]["application/json"]


async def test_document_with_api_key_declares_security(iris_logreg, monkeypatch):
    monkeypatch.setenv("IRIS_KEY", "k")
    async with iris_logreg.serve(auth={"api_key_env": "IRIS_KEY"}) as (_app, client):
        document = (await client.get("/openapi.json", headers={"X-API-Key": "k"})).json()
    validate(document)
    assert document["security"] == [{"bearer": []}, {"apiKey": []}]
    assert document["paths"]["/health"]["get"]["security"] == []
    assert document["paths"]["/predict"]["post"]["security"] == [{"bearer": []}, {"apiKey": []}]
    assert "401" in document["paths"]["/predict"]["post"]["responses"]


class _References(HTMLParser):
    """Every tag and every attribute that could make a browser fetch or run something."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.references: list[str] = []
        self.anchors: set[str] = set()
        self.styles: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        for name, value in attrs:
            if name in ("href", "src", "action", "srcset", "data", "poster", "formaction"):
                self.references.append(value)
            if name == "id":
                self.anchors.add(value)
            if name == "style" or name.startswith("on"):
                self.styles.append(f"{name}={value}")

    def handle_data(self, data):
        if "style" in self.tags:
            self.styles.append(data)


@pytest.mark.parametrize("key", [None, "k"])
async def test_docs_page_is_self_contained_and_lists_every_route(iris_logreg, monkeypatch, key):
    """/docs works with no network: the server renders it from its own document, and it loads
    nothing from anywhere (no script, no stylesheet link, no image), which its CSP also forbids."""
    if key:
        monkeypatch.setenv("IRIS_KEY", key)
    async with iris_logreg.serve(auth={"api_key_env": "IRIS_KEY" if key else None}) \
            as (_app, client):
        headers = {"X-API-Key": key} if key else {}
        response = await client.get("/docs", headers=headers)
        document = (await client.get("/openapi.json", headers=headers)).json()
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"].startswith("default-src 'none';")
    page = response.text
    parsed = _References()
    parsed.feed(page)
    assert not parsed.tags & {"script", "link", "img", "iframe", "object", "embed", "form",
                              "base", "svg", "video", "audio", "source"}, parsed.tags
    # Links go to the page's own sections, or to the document beside it.
    for reference in parsed.references:
        assert reference == "openapi.json" or (
            reference.startswith("#") and reference[1:] in parsed.anchors), reference
    assert not any(("url(" in style or "@import" in style or style.startswith("on"))
                   for style in parsed.styles)
    assert "<title>iris 1 - API reference</title>" in page
    for path, item in document["paths"].items():
        for method in item:
            assert f'<span class="method">{method}</span> <code>{html.escape(path)}</code>' in page
    for name in document["components"]["schemas"]:
        assert f'id="schema-{name}"' in page
    for feature in IRIS_FEATURES:
        assert f"<td><code>{feature}</code></td>" in page
    authorization = '-H "Authorization: Bearer $API_KEY" ' if key else ""
    assert html.escape(f'curl -X POST "$URL/predict" {authorization}-H \'Content-Type: '
                       'application/json\' -d \'{"features":[5.84,3.06,3.76,1.2]}\'') in page
    assert ("Authorization: Bearer $API_KEY" in html.unescape(page)) == bool(key)
    assert ("need <code>Authorization: Bearer &lt;key&gt;</code>" in page) == bool(key)
