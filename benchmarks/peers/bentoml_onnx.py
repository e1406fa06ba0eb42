"""BentoML over ONNX Runtime with adaptive batching, as BentoML's adaptive batching guide shows.

    MODEL_PATH=model.onnx bentoml serve bentoml_onnx:OnnxModel --host 127.0.0.1 --port 8000

A batchable API: each request sends `{"features": [[...]]}` (a batch of one row, as batchable
APIs take), BentoML's dispatcher merges concurrent requests along the first dimension into one
`session.run` of up to MAX_BATCH_SIZE rows within MAX_LATENCY_MS, and splits the answer back.
One worker (the machine has two cores); `traffic.concurrency` set to the batch size, as the
concurrency guide advises for a service with adaptive batching; the access log off, as
Slipway's is. Each answer row is the label
then the class probabilities.
"""

import bentoml
import numpy as np
from onnx_session import session

MAX_BATCH_SIZE = 32
MAX_LATENCY_MS = 1000
"""The guide's value. A tight bound makes BentoML refuse requests it predicts would miss it
(503s under load: 20 ms did here), and a benchmark's measured runs must be free of errors."""


@bentoml.service(workers=1, traffic={"concurrency": MAX_BATCH_SIZE, "timeout": 30},
                 logging={"access": {"enabled": False}})
class OnnxModel:
    def __init__(self) -> None:
        self.session = session()
        self.input = self.session.get_inputs()[0].name

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS)
    def predict(self, features: np.ndarray) -> np.ndarray:
        labels, probabilities = self.session.run(None, {self.input: features.astype(np.float32)})
        return np.column_stack([labels.astype(np.float32), probabilities])
