"""An ONNX Runtime session as the studio runs models in its own process: parity checks, latency
measurements and the predictions a reference profile records.

Sessions are pinned to one thread: on a shared 2-core machine that is what keeps medians
comparable, and it leaves the other core to the GUI.
"""

from __future__ import annotations

from pathlib import Path


def onnx_session(model: str | Path | bytes, threads: int = 1):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
