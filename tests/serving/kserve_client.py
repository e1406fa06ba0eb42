"""Calls a v2 server with KServe's Python REST client (`kserve.InferenceRESTClient`) and prints
what it decoded, as JSON, for tests/serving/test_v2_clients.py to check.

Run by a Python that has `kserve` installed (SLIPWAY_KSERVE_PYTHON): kserve pins pandas below 3
and protobuf below 7, so it lives in an environment of its own rather than the studio's.

    python kserve_client.py URL MODEL INPUT ROWS.npy OUTPUT...
"""

import asyncio
import json
import sys

import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput


async def main(url: str, model: str, name: str, rows: np.ndarray, outputs: list[str]) -> dict:
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=60))
    answers = {}
    # JSON both ways, binary both ways, and the client's defaults (binary inputs, no outputs
    # named).
    for mode in ("json", "binary", "defaults"):
        tensor = InferInput(name, list(rows.shape), "FP32")
        if mode == "defaults":
            tensor.set_data_from_numpy(rows)
            request = InferRequest(model_name=model, infer_inputs=[tensor], request_id=mode)
        else:
            binary = mode == "binary"
            tensor.set_data_from_numpy(rows, binary_data=binary)
            request = InferRequest(
                model_name=model, infer_inputs=[tensor], request_id=mode,
                request_outputs=[RequestedOutput(o, {"binary_data": binary}) for o in outputs])
        headers: dict[str, str] = {}
        response = await client.infer(url, request, model_name=model, response_headers=headers)
        answers[mode] = {"id": response.id, "content_type": headers["content-type"],
                         "outputs": {o.name: np.asarray(o.as_numpy()).tolist()
                                     for o in response.outputs}}
    return answers


if __name__ == "__main__":
    url, model, name, rows_file, *wanted = sys.argv[1:]
    print(json.dumps(asyncio.run(main(url, model, name, np.load(rows_file), wanted))))
