"""Stage 3, Serve: an ONNX model becomes a running server, in a container or a child process.

    deploy.py     deploy(artifact) and build_image: runtime choice, conversion gate, bundle, run
    bundle.py     the build context: Dockerfile, the serving app, model, serving.json, wheels
    runtimes/     base.py (Deployment), docker.py (docker SDK), process.py (a child process)
    client.py     the one way the studio talks to a served model (Probe, Load, Monitor use it)
"""
