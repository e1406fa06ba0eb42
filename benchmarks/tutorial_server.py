"""The tutorial server: what most "deploy your scikit-learn model with FastAPI" posts show.

    MODEL_PATH=model.joblib uvicorn tutorial_server:app --host 127.0.0.1 --port 8000

A joblib-loaded estimator, a pydantic body with `features: list[float]`, predict and predict_proba
on every request, uvicorn with its default options (access log on, one worker). This is the
baseline of benchmarks/serve.py; it is written the way people copy it, not tuned.
"""

import os

import joblib
import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI(title="Model API")
model = joblib.load(os.environ.get("MODEL_PATH", "model.joblib"))


class Features(BaseModel):
    features: list[float]


@app.post("/predict")
def predict(body: Features):
    X = np.array(body.features).reshape(1, -1)
    prediction = model.predict(X)[0]
    probabilities = model.predict_proba(X)[0]
    return {
        "prediction": prediction.item(),
        "probabilities": dict(zip((str(c) for c in model.classes_), probabilities.tolist())),
    }
