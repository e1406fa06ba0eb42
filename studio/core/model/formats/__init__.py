"""One module per model format. Each turns a file into a ModelSchema; `artifact.load` dispatches."""
