"""The ONNX Runtime session every peer serves the model with: the options Slipway's server uses
(slipway_server/model.py with its default `threads: 1`), so the servers differ only in how they
receive, batch and answer requests, not in how ONNX Runtime runs.

With ONNX Runtime's defaults instead (an intra-op thread per core, spinning while it waits), the
comparison would be one of session options, which any of these servers can set.
"""

import os

import onnxruntime as ort


def session() -> ort.InferenceSession:
    """The model at $MODEL_PATH: one intra-op thread, sequential, all graph optimisations, no
    spinning."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(os.environ.get("MODEL_PATH", "model.onnx"), options,
                                providers=["CPUExecutionProvider"])
