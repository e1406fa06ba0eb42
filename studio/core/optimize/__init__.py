"""Stage 2, Optimize: to ONNX and smaller or faster, each step checked for parity.

    convert.py    scikit-learn, XGBoost, LightGBM -> ONNX (in a child process), with parity
    optimize.py   graph, dynamic int8, static int8, float16 on an ONNX model, with parity
    parity.py     the same golden rows through both models: differences, labels, verdict
    timing.py     in-process latency medians (the reports and the benchmarks measure alike)
    report.py     the reports as text (the CLI prints it; the Optimize page shows it)
"""
