"""Stage 1, Model: a file or folder becomes a ModelArtifact with its ModelSchema.

    artifact.py   load(path) -> ModelArtifact: checks, format detection, dispatch, hashing
    formats/      one module per format (onnx, sklearn pickles and skops, mlflow, boosters)
    schema.py     ModelSchema: inputs, tabular features, outputs, metadata, sample bodies
    isolation.py  model code (pickles, converters) runs in a child process, never here
    pickle_*.py   what a pickle would import and call, read without running it (pickle_scan)
    datasets.py   tables of rows shaped by a schema: read, sampled, fed to ONNX Runtime
    session.py    an ONNX Runtime session as the studio runs models in its own process
"""
