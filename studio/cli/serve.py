"""`slipway build`, `serve`, `predict` and `containers`: the Serve stage (and one request to what
it serves) without a screen."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from studio.cli.common import add_api_key_option, add_trust_option, api_key, log_line
from studio.core.errors import ExitStatus
from studio.core.units import text_table

COMMANDS = ("build", "serve", "predict", "containers")


def add_commands(commands: argparse._SubParsersAction) -> None:
    build = commands.add_parser("build", help="build a serving image with Docker")
    build.add_argument("model", help="a model file or MLflow folder (converted to ONNX if needed)")
    _add_image_options(build)
    build.add_argument("--reference", metavar="DATA", help="reference data for drift metrics")
    build.set_defaults(run=run_build)

    serve = commands.add_parser("serve", help="serve a model until Ctrl-C")
    serve.add_argument("model", help="a model file or MLflow folder (converted to ONNX if needed)")
    serve.add_argument("--runtime", choices=("auto", "docker", "process"), default="auto",
                       help="auto: Docker when an engine answers, else a local process")
    serve.add_argument("--port", type=int, help="port on 127.0.0.1 (default: a free one)")
    serve.add_argument("--reference", metavar="DATA", help="reference data for drift metrics")
    serve.add_argument("--cpus", type=float, help="CPU limit (Docker)")
    serve.add_argument("--memory", help="memory limit such as 512m (Docker)")
    serve.add_argument("--ready-timeout", type=float, default=60.0, metavar="SECONDS")
    serve.add_argument("--serve-failed-parity", action="store_true",
                       help="serve a conversion that failed its parity check")
    _add_image_options(serve)
    serve.set_defaults(run=run_serve)

    predict = commands.add_parser("predict", help="send one request to a served model")
    predict.add_argument("url", help="the server's base URL, e.g. http://127.0.0.1:8000")
    predict.add_argument("--data", required=True, help="JSON body, or @file.json")
    predict.add_argument("--route", default="/predict",
                         help="/predict, /predict/batch or /v2/models/NAME/infer")
    add_api_key_option(predict)
    predict.set_defaults(run=run_predict)

    containers = commands.add_parser(
        "containers", help="list the containers this installation of the studio started")
    containers.add_argument("--clean", action="store_true", help="stop and remove them all")
    containers.set_defaults(run=run_containers)


def _add_image_options(parser: argparse.ArgumentParser) -> None:
    from studio.core.serve.bundle import DEFAULT_BASE_IMAGE

    parser.add_argument("--tag", help="image tag (default slipway/NAME:VERSION)")
    parser.add_argument("--base-image", default=DEFAULT_BASE_IMAGE,
                        help=f"image to build on (default {DEFAULT_BASE_IMAGE})")
    parser.add_argument("--wheelhouse", metavar="DIR",
                        help="wheels for the image (default: downloaded once and cached)")
    add_trust_option(parser)
    parser.add_argument("--model-version", default="1",
                        help="version to serve as: letters, digits, '.', '_', '-', '+' (default 1)")
    parser.add_argument("--no-batching", action="store_true", help="turn micro-batching off")
    parser.add_argument("--api-key-env", metavar="VAR",
                        help="require the API key held in this environment variable (it must be "
                             "set when serving; the key reaches the server, never the image)")
    parser.add_argument("--protect-metrics", action="store_true",
                        help="/metrics asks for the API key too (needs --api-key-env)")


def _serving_options(args: argparse.Namespace):
    from studio.core.serve.bundle import ServingOptions

    reference = getattr(args, "reference", None)
    return ServingOptions(version=args.model_version, batching=not args.no_batching,
                          api_key_env=args.api_key_env, protect_metrics=args.protect_metrics,
                          reference_data=Path(reference) if reference else None)


def _image_options(args: argparse.Namespace):
    from studio.core.serve.bundle import ImageOptions

    return ImageOptions(base_image=args.base_image,
                        wheelhouse=Path(args.wheelhouse) if args.wheelhouse else None)


def run_build(args: argparse.Namespace) -> int:
    from studio.core.model.artifact import load
    from studio.core.serve.deploy import DeployOptions, build_image
    from studio.core.tasks import Progress

    artifact = load(args.model, trust=args.trust)
    options = DeployOptions(tag=args.tag, serving=_serving_options(args),
                            image=_image_options(args))
    built = build_image(artifact, options, progress=Progress(on_partial=log_line))
    print(f"{built.tag} {built.image_id}")
    return ExitStatus.OK


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def run_serve(args: argparse.Namespace) -> int:
    import signal

    from studio.core.model.artifact import load
    from studio.core.serve.deploy import DeployOptions, deploy
    from studio.core.tasks import Progress

    artifact = load(args.model, trust=args.trust)
    options = DeployOptions(runtime=args.runtime, tag=args.tag, port=args.port, cpus=args.cpus,
                            memory=args.memory, ready_timeout=args.ready_timeout,
                            serve_failed_parity=args.serve_failed_parity,
                            serving=_serving_options(args), image=_image_options(args))
    deployment = deploy(artifact, options, progress=Progress(on_partial=log_line))
    signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop cleans up like Ctrl-C
    print(f"{deployment.name} is ready at {deployment.url} ({deployment.runtime} runtime). "
          "Ctrl-C stops it.", flush=True)
    try:
        for line in deployment.follow_logs():
            log_line(line)
        reason = deployment.exit_reason() or "stopped"
        print(f"slipway: error: the model server {reason}.", file=sys.stderr)
        return ExitStatus.FAILED
    except KeyboardInterrupt:
        print("Stopping…", file=sys.stderr)
        return ExitStatus.OK
    finally:
        deployment.stop()


def run_predict(args: argparse.Namespace) -> int:
    import json

    from studio.core.serve.client import ModelClient

    text = args.data
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as exc:
            print(f"slipway: error: cannot read {text[1:]}: {exc.strerror}", file=sys.stderr)
            return ExitStatus.USAGE
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        print(f"slipway: error: --data is not valid JSON: {exc}", file=sys.stderr)
        return ExitStatus.USAGE
    with ModelClient(args.url, api_key=api_key(args)) as client:
        reply = client.predict(body, args.route)
    print(json.dumps(reply.body, indent=2) if reply.is_json else reply.body)
    if not reply.ok:
        error = reply.body.get("error") if isinstance(reply.body, dict) else None
        print(f"slipway: error: HTTP {reply.status}" + (f": {error}" if error else ""),
              file=sys.stderr)
        return ExitStatus.FAILED
    print(f"HTTP {reply.status} in {reply.latency_ms:.1f} ms", file=sys.stderr)
    return ExitStatus.OK


def run_containers(args: argparse.Namespace) -> int:
    from studio.core.serve.runtimes.docker import MODEL_LABEL, DockerRuntime

    runtime = DockerRuntime()
    containers = runtime.managed()
    rows = [["container", "model", "status", "ports"]]
    for container in containers:
        published = container.attrs["NetworkSettings"]["Ports"] or {}
        ports = ", ".join(f"{b[0]['HostIp']}:{b[0]['HostPort']}->{p}"
                          for p, b in published.items() if b)
        rows.append([container.name, container.labels.get(MODEL_LABEL, "?"), container.status,
                     ports])
    if len(rows) > 1:
        print("\n".join(text_table(rows, indent="")))
    if args.clean:
        print(f"Removed {runtime.cleanup()} container(s).")
    elif len(rows) == 1:
        print("The studio has no containers on this engine.")
    return ExitStatus.OK


