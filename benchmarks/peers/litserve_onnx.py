"""LitServe over ONNX Runtime with its dynamic batching, as LitServe's batching docs show.

    MODEL_PATH=model.onnx python litserve_onnx.py --port 8000

`decode_request` takes one row, LitServe stacks up to MAX_BATCH_SIZE of them that arrive within
BATCH_TIMEOUT_S into one `predict` (one `session.run`), and `unbatch` hands each request its row.
One inference worker on the CPU and one API server process (the machine has two cores), the
ZeroMQ queue between them (`fast_queue`, pyzmq installed), log level warning; the ONNX Runtime
session of onnx_session.py (Slipway's session options).
"""

import argparse

import litserve as ls
import numpy as np
from onnx_session import session

MAX_BATCH_SIZE = 32
BATCH_TIMEOUT_S = 0.002
"""The same window as Slipway's micro-batching (max_wait_ms 2.0, max_batch_size 32)."""


class OnnxAPI(ls.LitAPI):
    def setup(self, device):
        self.session = session()
        self.input = self.session.get_inputs()[0].name

    def decode_request(self, request):
        return np.asarray(request["features"], dtype=np.float32)

    def batch(self, inputs):
        return np.stack(inputs)

    def predict(self, rows):
        return self.session.run(None, {self.input: rows})

    def unbatch(self, output):
        labels, probabilities = output
        return list(zip(labels.tolist(), probabilities.tolist()))

    def encode_response(self, output):
        label, probabilities = output
        return {"label": label, "probabilities": probabilities}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    api = OnnxAPI(max_batch_size=MAX_BATCH_SIZE, batch_timeout=BATCH_TIMEOUT_S)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1, fast_queue=True)
    server.run(host="127.0.0.1", port=args.port, num_api_servers=1, log_level="warning",
               generate_client_file=False)
