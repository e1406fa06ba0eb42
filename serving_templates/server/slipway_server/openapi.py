"""The OpenAPI 3.1 document of one served model, built by hand from its features and outputs.
/openapi.json serves it; /docs shows it as a page (reference_page)."""

from __future__ import annotations

import math
from typing import Any

from . import __version__
from .model import Model
from .settings import Settings

JSON = "application/json"
BINARY = "application/octet-stream"
HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_DATA = (
    "Binary tensor data (the extension GET /v2 lists as binary_tensor_data, which tritonclient "
    "uses by default): an input may give `\"parameters\": {\"binary_data_size\": N}` instead of "
    "`data`, and its N bytes follow the JSON, after those of the binary inputs listed before it: "
    "little-endian, row-major; BOOL one byte, 0 or 1; BYTES each a 4-byte little-endian length "
    f"and its bytes. The {HEADER_LENGTH} header then gives the JSON's length in bytes. An output "
    "asked for with `\"parameters\": {\"binary_data\": true}`, or every output when the "
    "request's parameters say `\"binary_data_output\": true`, comes back the same way: the "
    f"answer is {BINARY}, its JSON's length in {HEADER_LENGTH}, and each such output gives "
    "binary_data_size instead of data. The whole body counts towards the body limit.")
MAX_V2_EXAMPLE_VALUES = 1024


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_body(schema: dict[str, Any], description: str,
               examples: dict[str, Any] | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": schema}
    if examples:
        content["examples"] = {k: {"value": v} for k, v in examples.items()}
    return {"description": description, "content": {JSON: content}}


def _error(description: str) -> dict[str, Any]:
    return _json_body(_ref("Error"), description)


def _feature_schema(feature: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": feature.json_type}
    if feature.categories:
        schema["enum"] = list(feature.categories)
    schema["examples"] = [feature.example_value()]
    where = f"column {feature.column} of input '{feature.tensor}'" if feature.column is not None \
        else f"input '{feature.tensor}'"
    description = f"{feature.kind} feature ({feature.dtype}), {where}."
    if feature.categories:
        description += " Known categories are listed; an unseen one goes to the model as it is."
    schema["description"] = description
    return schema


def _prediction_schema(model: Model) -> dict[str, Any]:
    if model.task == "classification":
        label: dict[str, Any] = {"description": "The predicted class."}
        if model.class_names:
            types = sorted({"string" if isinstance(c, str) else "integer"
                            for c in model.class_names})
            label["type"] = types[0] if len(types) == 1 else types
            label["enum"] = list(model.class_names)
        properties: dict[str, Any] = {"label": label}
        if model.proba_index is not None:
            probability = {"type": "number", "minimum": 0, "maximum": 1}
            probabilities: dict[str, Any] = {
                "type": "object", "description": "Probability of each class.",
                "additionalProperties": probability}
            if model.class_keys:
                probabilities["properties"] = {k: probability for k in model.class_keys}
            properties["probabilities"] = probabilities
        return {"type": "object", "properties": properties, "required": ["label"]}
    if model.task == "regression":
        return {"type": "object", "required": ["value"], "properties": {
            "value": {"oneOf": [{"type": "number"}, {"type": "array", "items": {"type": "number"}}],
                      "description": "The predicted value."}}}
    return {"type": "object", "required": ["outputs"], "properties": {
        "outputs": {"type": "object", "description": "Each output tensor's value for the row.",
                    "properties": {t.name: {} for t in model.outputs if t.kind != "unsupported"}}}}


def _v2_example(model: Model) -> dict[str, Any] | None:
    if model.codec is not None:
        # The features' own example values (a float32 tensor would print 5.840000152587891).
        row = [f.example_value() for f in model.features]
        inputs = []
        for name, positions, _, rank2 in model.codec.groups:
            shape = [1, len(positions)] if rank2 else [len(positions)]
            inputs.append({"name": name, "shape": shape,
                           "datatype": model.input_by_name[name].datatype,
                           "data": [row[i] for i in positions]})
        return {"inputs": inputs}
    sizes = [math.prod(d if d is not None else 1 for d in t.shape) for t in model.inputs]
    if sum(sizes) > MAX_V2_EXAMPLE_VALUES:
        return None
    return {"inputs": [
        {"name": name, "shape": list(array.shape), "datatype": model.input_by_name[name].datatype,
         "data": array.reshape(-1).tolist()} for name, array in model.sample_feeds(1).items()]}


def _schemas(model: Model, settings: Settings) -> dict[str, Any]:
    datatypes = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32",
                 "INT64", "FP16", "FP32", "FP64", "BYTES"]
    tensor_metadata = {"type": "object", "required": ["name", "datatype", "shape"], "properties": {
        "name": {"type": "string"}, "datatype": {"type": "string", "enum": datatypes},
        "shape": {"type": "array", "items": {"type": "integer"},
                  "description": "-1 marks a dimension of any size."}}}
    schemas: dict[str, Any] = {
        "Error": {"type": "object", "required": ["error"],
                  "properties": {"error": {"type": "string",
                                           "description": "What is wrong, in one sentence."}}},
        "Status": {"type": "object", "required": ["status"],
                   "properties": {"status": {"type": "string"}}},
        "V2ServerMetadata": {"type": "object", "required": ["name", "version", "extensions"],
                             "properties": {"name": {"type": "string"},
                                            "version": {"type": "string"},
                                            "extensions": {"type": "array",
                                                           "items": {"type": "string"}}}},
        "V2Live": {"type": "object", "required": ["live"],
                   "properties": {"live": {"type": "boolean"}}},
        "V2Ready": {"type": "object", "required": ["ready"],
                    "properties": {"ready": {"type": "boolean"}}},
        "V2ModelReady": {"type": "object", "required": ["name", "ready"],
                         "properties": {"name": {"type": "string"},
                                        "ready": {"type": "boolean"}}},
        "V2TensorMetadata": tensor_metadata,
        "V2ModelMetadata": {
            "type": "object", "required": ["name", "platform", "inputs", "outputs"],
            "properties": {"name": {"type": "string"},
                           "versions": {"type": "array", "items": {"type": "string"}},
                           "platform": {"type": "string"},
                           "inputs": {"type": "array", "items": _ref("V2TensorMetadata")},
                           "outputs": {"type": "array", "items": _ref("V2TensorMetadata")}}},
        "V2RequestInput": {
            "type": "object", "required": ["name", "shape", "datatype"],
            "description": "Values in 'data', or as binary data after the JSON "
                           "(parameters.binary_data_size).",
            "properties": {
                "name": {"type": "string", "enum": model.input_names},
                "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                "datatype": {"type": "string",
                             "enum": sorted({t.datatype for t in model.inputs})},
                "parameters": {"type": "object", "properties": {"binary_data_size": {
                    "type": "integer", "minimum": 0,
                    "description": "Bytes of this input's binary data after the JSON."}}},
                "data": {"type": "array", "description": "The tensor's values, flattened in "
                                                         "row-major order."}}},
        "V2InferenceRequest": {
            "type": "object", "required": ["inputs"],
            "properties": {
                "id": {"type": "string"},
                "parameters": {"type": "object", "properties": {"binary_data_output": {
                    "type": "boolean", "description": "Return every output as binary data, "
                                                      "unless it says otherwise."}}},
                "inputs": {"type": "array", "minItems": 1, "items": _ref("V2RequestInput")},
                "outputs": {"type": "array", "description": "Which outputs to return (all by "
                                                            "default).",
                            "items": {"type": "object", "required": ["name"], "properties": {
                                "name": {"type": "string", "enum": model.output_names},
                                "parameters": {"type": "object", "properties": {
                                    "binary_data": {"type": "boolean",
                                                    "description": "Return this output as "
                                                                   "binary data."}}}}}}}},
        "V2ResponseOutput": {
            "type": "object", "required": ["name", "shape", "datatype"],
            "description": "Values in 'data', or as binary data after the JSON "
                           "(parameters.binary_data_size).",
            "properties": {"name": {"type": "string"},
                           "shape": {"type": "array", "items": {"type": "integer"}},
                           "datatype": {"type": "string", "enum": datatypes},
                           "parameters": {"type": "object", "properties": {"binary_data_size": {
                               "type": "integer", "minimum": 0}}},
                           "data": {"type": "array"}}},
        "V2InferenceResponse": {
            "type": "object", "required": ["model_name", "outputs"],
            "properties": {"model_name": {"type": "string"}, "model_version": {"type": "string"},
                           "id": {"type": "string"},
                           "outputs": {"type": "array", "items": _ref("V2ResponseOutput")}}},
    }
    if model.codec is not None:
        features = model.features
        schemas["FeatureObject"] = {
            "type": "object", "description": "Feature values by name.",
            "properties": {f.name: _feature_schema(f) for f in features},
            "required": [f.name for f in features], "additionalProperties": False}
        schemas["FeatureList"] = {
            "type": "array", "description": "Feature values in order: "
                                            + ", ".join(f.name for f in features) + ".",
            "prefixItems": [_feature_schema(f) | {"title": f.name} for f in features],
            "items": False, "minItems": len(features), "maxItems": len(features)}
        schemas["Features"] = {"oneOf": [_ref("FeatureObject"), _ref("FeatureList")]}
        schemas["PredictRequest"] = {"type": "object", "required": ["features"],
                                     "properties": {"features": _ref("Features")}}
        schemas["Prediction"] = _prediction_schema(model)
        schemas["PredictResponse"] = {"allOf": [_ref("Prediction"), {
            "type": "object", "required": ["model", "version"],
            "properties": {"model": {"type": "string", "const": model.name},
                           "version": {"type": "string", "const": model.version}}}]}
        schemas["BatchRequest"] = {
            "type": "object", "required": ["instances"],
            "properties": {"instances": {"type": "array", "minItems": 1,
                                         "maxItems": settings.limits.max_batch_rows,
                                         "items": _ref("Features")}}}
        schemas["BatchResponse"] = {
            "type": "object", "required": ["model", "version", "predictions"],
            "properties": {"model": {"type": "string"}, "version": {"type": "string"},
                           "predictions": {"type": "array", "items": _ref("Prediction")}}}
    return schemas


def build_openapi(model: Model, settings: Settings, *, auth: bool) -> dict[str, Any]:
    protected = [{"bearer": []}, {"apiKey": []}] if auth else None
    common: dict[str, Any] = {
        "400": _error("The request is malformed or its values are wrong; the message names the "
                      "problem."),
        "408": _error(f"The body did not arrive within {settings.limits.body_timeout_s:g} s of "
                      "the request's head; the connection is closed."),
        "413": _error("The body (or the batch) is over the server's limit."),
        "431": _error(f"The request line and headers are over {settings.limits.max_header_bytes} "
                      "bytes; the connection is closed."),
        "422": _error("The model could not run on these values, or answered NaN or infinity "
                      "(which JSON cannot carry) for them."),
        "503": _error("The server is overloaded; retry after the Retry-After seconds."),
    }
    if auth:
        common["401"] = _error("Missing or wrong API key.")
    unauthorized = {"401": common["401"]} if auth else {}

    def operation(summary: str, tag: str, responses: dict[str, Any], *,
                  body: dict[str, Any] | None = None, secured: bool = True,
                  description: str | None = None, operation_id: str,
                  parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        op: dict[str, Any] = {"summary": summary, "operationId": operation_id, "tags": [tag],
                              "responses": responses}
        if description:
            op["description"] = description
        if parameters:
            op["parameters"] = parameters
        if body is not None:
            op["requestBody"] = body | {"required": True}
        if auth:
            op["security"] = protected if secured else []
        return op

    name_param = {"name": "model_name", "in": "path", "required": True,
                  "schema": {"type": "string", "enum": [model.name]}}
    version_param = {"name": "model_version", "in": "path", "required": True,
                     "schema": {"type": "string", "enum": [model.version]}}
    header_param = {"name": HEADER_LENGTH, "in": "header", "required": False,
                    "description": "With binary tensor data after the JSON: the JSON's length "
                                   "in bytes (without it, the whole body is JSON).",
                    "schema": {"type": "integer", "minimum": 1}}
    not_found = {"404": _error("No model of that name (or version) is served here.")}
    status = {"200": _json_body(_ref("Status"), "Yes.")}

    def document_route(summary: str, operation_id: str, answer: str, absent: str,
                       description: str) -> dict[str, Any]:
        """A GET of a JSON document the server may have been started without (a 404 then)."""
        return {"get": operation(
            summary, "monitoring",
            {"200": _json_body({"type": "object"}, answer)} | {"404": _error(absent)}
            | unauthorized, operation_id=operation_id, description=description)}

    paths: dict[str, Any] = {
        "/health": {"get": operation(
            "Liveness", "health", status, secured=False, operation_id="health",
            description="200 while the process runs.")},
        "/ready": {"get": operation(
            "Readiness", "health",
            status | {"503": _json_body(_ref("Status"), "Warming up or draining.")},
            secured=False, operation_id="ready",
            description="200 once the model is loaded and warmed up; 503 before, and while "
                        "the server drains for shutdown.")},
        "/metrics": {"get": operation(
            "Prometheus metrics", "monitoring",
            {"200": {"description": "Prometheus text exposition.",
                     "content": {"text/plain": {"schema": {"type": "string"}}}}}
            | (unauthorized if settings.protect_metrics else {}),
            secured=settings.protect_metrics, operation_id="metrics",
            description="Requests, latencies, batches, served feature values and predicted "
                        "labels; " + ("asks for the API key (auth.protect_metrics)."
                                      if settings.protect_metrics else
                                      "open to scrapers, also when an API key is set."))},
        "/schema": document_route(
            "The model's schema", "schema", "Slipway Studio's ModelSchema of the model.",
            "Started without a schema.",
            "Features, inputs and outputs: load tests make valid rows from it."),
        "/reference": document_route(
            "The reference profile", "reference", "Per-feature bin edges and counts.",
            "Built without a reference profile.",
            "The bins /metrics counts served feature values into: drift is measured against it."),
    }
    if model.codec is not None:
        sample = {f.name: f.example_value() for f in model.features}
        predict_errors = {k: v for k, v in common.items()}
        paths["/predict"] = {"post": operation(
            f"Predict one row with {model.name}", "predict",
            {"200": _json_body(_ref("PredictResponse"), "The prediction.")} | predict_errors,
            body=_json_body(_ref("PredictRequest"), "One row of features, by name or in order.",
                            {"by name": {"features": sample},
                             "in order": {"features": list(sample.values())}}),
            operation_id="predict",
            description="Features: " + ", ".join(
                f"{f.name} ({f.json_type})" for f in model.features) + ".")}
        paths["/predict/batch"] = {"post": operation(
            f"Predict several rows with {model.name}", "predict",
            {"200": _json_body(_ref("BatchResponse"), "One prediction per instance, in order.")}
            | predict_errors,
            body=_json_body(_ref("BatchRequest"), "Rows of features, by name or in order.",
                            {"in order": {"instances": [list(sample.values())]},
                             "by name": {"instances": [sample]}}),
            operation_id="predict_batch",
            description=f"At most {settings.limits.max_batch_rows} instances per request.")}
    v2_example = _v2_example(model)
    infer_body = _json_body(_ref("V2InferenceRequest"), "Input tensors, data flattened row-major.",
                            {"sample": v2_example} if v2_example else None)
    infer_body["content"][BINARY] = {}
    answer = _json_body(_ref("V2InferenceResponse"), "Output tensors.")
    answer["content"][BINARY] = {}
    answer["headers"] = {HEADER_LENGTH: {
        "description": f"With {BINARY}: the length of the JSON before the binary data.",
        "schema": {"type": "integer"}}}
    infer_responses = {"200": answer} | common | not_found
    metadata_responses = {"200": _json_body(_ref("V2ModelMetadata"), "Inputs and outputs.")} \
        | not_found | unauthorized
    ready_responses = {"200": _json_body(_ref("V2ModelReady"), "Ready."),
                       "503": _json_body(_ref("V2ModelReady"), "Not ready yet.")} | not_found \
        | unauthorized
    paths |= {
        "/v2": {"get": operation(
            "Server metadata", "v2",
            {"200": _json_body(_ref("V2ServerMetadata"), "Name, version, extensions.")}
            | unauthorized, operation_id="v2_server_metadata")},
        "/v2/health/live": {"get": operation(
            "Server live", "v2", {"200": _json_body(_ref("V2Live"), "Live.")},
            secured=False, operation_id="v2_live")},
        "/v2/health/ready": {"get": operation(
            "Server ready", "v2", {"200": _json_body(_ref("V2Ready"), "Ready."),
                                   "503": _json_body(_ref("V2Ready"), "Not ready.")},
            secured=False, operation_id="v2_ready")},
        "/v2/models/{model_name}": {"get": operation(
            "Model metadata", "v2", metadata_responses, parameters=[name_param],
            operation_id="v2_model_metadata")},
        "/v2/models/{model_name}/ready": {"get": operation(
            "Model ready", "v2", ready_responses, parameters=[name_param],
            operation_id="v2_model_ready")},
        "/v2/models/{model_name}/infer": {"post": operation(
            "Inference (Open Inference Protocol v2)", "v2", infer_responses, body=infer_body,
            parameters=[name_param, header_param], operation_id="v2_infer",
            description=BINARY_DATA)},
        "/v2/models/{model_name}/versions/{model_version}": {"get": operation(
            "Model version metadata", "v2", metadata_responses,
            parameters=[name_param, version_param], operation_id="v2_model_version_metadata")},
        "/v2/models/{model_name}/versions/{model_version}/ready": {"get": operation(
            "Model version ready", "v2", ready_responses, parameters=[name_param, version_param],
            operation_id="v2_model_version_ready")},
        "/v2/models/{model_name}/versions/{model_version}/infer": {"post": operation(
            "Inference on a model version", "v2", infer_responses, body=infer_body,
            parameters=[name_param, version_param, header_param],
            operation_id="v2_model_version_infer", description=BINARY_DATA)},
    }
    task = {"classification": "a classifier", "regression": "a regressor"}.get(model.task,
                                                                                "a model")
    served = (f"{len(model.features)} features" if model.codec is not None
              else "tensors through the Open Inference Protocol v2")
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": f"{model.name} {model.version}",
                 "version": model.version,
                 "description": f"{model.name} is {task} taking {served}, served by Slipway "
                                f"(slipway_server {__version__}, onnxruntime). Model sha256 "
                                f"{model.sha256}."},
        "paths": paths,
        "components": {"schemas": _schemas(model, settings)},
    }
    if auth:
        document["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "Authorization: Bearer <API key>"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
        document["security"] = protected
    return document
