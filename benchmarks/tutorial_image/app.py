"""The tutorial image's app: Flask + joblib, as in the usual blog post (served by gunicorn)."""

import joblib
import numpy as np
from flask import Flask, jsonify, request

app = Flask(__name__)
model = joblib.load("model.joblib")


@app.post("/predict")
def predict():
    X = np.array(request.get_json()["features"], dtype=float).reshape(1, -1)
    return jsonify(prediction=model.predict(X)[0].item(),
                   probabilities=model.predict_proba(X)[0].tolist())


@app.get("/ready")
def ready():
    return {"status": "ready"}
