"""FastAPI with an `async def` route over ONNX Runtime: what a user writes for an ONNX model
after the FastAPI tutorial, tuned as FastAPI's deployment docs advise.

    MODEL_PATH=model.onnx uvicorn fastapi_onnx:app --host 127.0.0.1 --port 8000 --no-access-log

One ONNX Runtime session made at import (onnx_session.py: Slipway's session options), a pydantic
body `features: list[float]`, one `session.run` per request inside the `async def` route (no
thread hop: the call is short), and uvicorn with uvloop and httptools (installed here) and the
access log off. One worker, as every server in benchmarks/serve.py runs as one process.
"""

import numpy as np
from fastapi import FastAPI
from onnx_session import session as onnx_session
from pydantic import BaseModel

app = FastAPI(title="Model API")
session = onnx_session()
INPUT = session.get_inputs()[0].name


class Features(BaseModel):
    features: list[float]


@app.post("/predict")
async def predict(body: Features):
    label, probabilities = session.run(None, {INPUT: np.array([body.features], np.float32)})
    return {"label": label[0].item(), "probabilities": probabilities[0].tolist()}
