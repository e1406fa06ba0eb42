"""`slipway build`, `serve`, `predict` and `containers`: the Serve stage (and one request to what
it serves) without a screen."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from studio.cli.common import (
    MODEL_HELP,
    add_api_key_option,
    add_record_option,
    add_trust_option,
    api_key,
    log_line,
)
from studio.core.errors import ExitStatus, StudioError
from studio.core.units import text_table

COMMANDS = ("build", "serve", "predict", "containers")


def add_commands(commands: argparse._SubParsersAction) -> None:
    build = commands.add_parser("build", help="build a serving image with Docker")
    build.add_argument("model", help="a model file or MLflow folder (converted to ONNX if needed)"
                                     + MODEL_HELP)
    _add_image_options(build)
    build.add_argument("--reference", metavar="DATA", help="reference data for drift metrics")
    add_record_option(build)
    build.set_defaults(run=run_build)

    serve = commands.add_parser("serve", help="serve a model until Ctrl-C")
    serve.add_argument("model", help="a model file or MLflow folder (converted to ONNX if needed)"
                                     + MODEL_HELP)
    serve.add_argument("--runtime", choices=("auto", "docker", "process"), default="auto",
                       help="auto: Docker when an engine answers, else a local process")
    serve.add_argument("--port", type=int, help="port on 127.0.0.1 (default: a free one)")
    reference = serve.add_mutually_exclusive_group()
    reference.add_argument("--reference", metavar="DATA",
                           help="reference data for drift metrics: the rows the model was "
                                "trained on (CSV, Parquet or .npy); remembered for the model")
    reference.add_argument("--no-reference", action="store_true",
                           help="serve without reference data (remembered for the model)")
    serve.add_argument("--cpus", type=float, help="CPU limit (Docker)")
    serve.add_argument("--memory", help="memory limit such as 512m (Docker)")
    serve.add_argument("--ready-timeout", type=float, default=60.0, metavar="SECONDS")
    serve.add_argument("--serve-failed-parity", action="store_true",
                       help="serve a conversion that failed its parity check")
    _add_image_options(serve)
    add_record_option(serve)
    serve.set_defaults(run=run_serve)

    predict = commands.add_parser("predict", help="send one request to a served model")
    predict.add_argument("url", help="the server's URL, with or without the route, e.g. "
                                     "http://127.0.0.1:8000 or http://127.0.0.1:8000/predict")
    predict.add_argument("--data", help="JSON body, or @file.json (default: the model's sample "
                                        "body for the route)")
    predict.add_argument("--route", help="/predict (default), /predict/batch or "
                                         "/v2/models/NAME/infer, unless the URL names one")
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
    parser.add_argument("--model-version",
                        help="version to serve as: letters, digits, '.', '_', '-', '+' (default: "
                             "the registered version's number for NAME:N or NAME@ALIAS, else 1)")
    parser.add_argument("--no-batching", action="store_true", help="turn micro-batching off")
    parser.add_argument("--api-key-env", metavar="VAR",
                        help="require the API key held in this environment variable (it must be "
                             "set when serving; the key reaches the server, never the image)")
    parser.add_argument("--protect-metrics", action="store_true",
                        help="/metrics asks for the API key too (needs --api-key-env)")


def _serving_options(args: argparse.Namespace, registered: int | None):
    """`registered`: the registry's version number when MODEL was NAME:N or NAME@ALIAS, served
    as the model's version so that two versions' images, tags and metrics never mix."""
    from studio.core.serve.bundle import ServingOptions

    reference = getattr(args, "reference", None)
    version = args.model_version or (str(registered) if registered is not None else "1")
    return ServingOptions(version=version, batching=not args.no_batching,
                          api_key_env=args.api_key_env, protect_metrics=args.protect_metrics,
                          reference_data=Path(reference) if reference else None)


def _registered(args: argparse.Namespace, model, artifact) -> int | None:
    """The registry's number of the version served: the one MODEL named (NAME:N, NAME@ALIAS), else
    the one the file is recorded as now (unless --no-record). Said on stderr: stdout is the
    command's answer (the image, or the URL)."""
    if model.version is not None or args.no_record:
        return model.version
    from studio.core.units import printable
    from studio.core.versions.registry import record_loaded

    try:
        recorded = record_loaded(artifact)
    except StudioError as exc:  # served all the same, as version "1"
        print(f"slipway: warning: not recorded in the registry: {exc}", file=sys.stderr)
        return None
    print(printable(f"{'Recorded' if recorded.created else 'Already recorded'} as "
                    f"{recorded.version.reference}"), file=sys.stderr)
    return recorded.version.version


def _image_options(args: argparse.Namespace):
    from studio.core.serve.bundle import ImageOptions

    return ImageOptions(base_image=args.base_image,
                        wheelhouse=Path(args.wheelhouse) if args.wheelhouse else None)


def run_build(args: argparse.Namespace) -> int:
    from studio.core.model.artifact import load
    from studio.core.serve.deploy import DeployOptions, build_image
    from studio.core.tasks import Progress
    from studio.core.versions.references import resolve

    model = resolve(args.model)
    artifact = load(model.path, trust=args.trust)
    options = DeployOptions(tag=args.tag,
                            serving=_serving_options(args, _registered(args, model, artifact)),
                            image=_image_options(args))
    built = build_image(artifact, options, progress=Progress(on_partial=log_line))
    print(f"{built.tag} {built.image_id}")
    return ExitStatus.OK


def _chosen_reference(args: argparse.Namespace,
                      model: Path) -> tuple[Path | None, bool, str | None]:
    """The reference data to serve `model` with, whether it was chosen now (to be remembered),
    and what to say about it once the model is served: --reference or --no-reference, else what
    was chosen for the model before, else on a terminal the answer to a question. Serving without
    says what it costs."""
    from studio.core.monitor.reference_choice import NO_DATA_CAVEAT, remembered_reference

    if args.reference:
        return Path(args.reference), True, None
    if args.no_reference:
        return None, True, NO_DATA_CAVEAT
    remembered = remembered_reference(model)
    if remembered is not None and not remembered.missing:
        if remembered.data is not None:
            return remembered.data, False, (f"Reference data: {remembered.data} (chosen for this "
                                            "model before; --no-reference serves without).")
        return None, False, (f"{NO_DATA_CAVEAT} (Chosen for this model before; --reference "
                             "DATA gives it.)")
    gone = (f"The reference data chosen for this model before, {remembered.data}, is gone. "
            if remembered is not None else "")
    if not sys.stdin.isatty():
        return None, False, (f"{gone}{NO_DATA_CAVEAT} Give --reference DATA (the rows the model "
                             "was trained on), or --no-reference; the choice is remembered for "
                             "this model.")
    print(gone + NO_DATA_CAVEAT, file=sys.stderr)
    answer = input("Reference data (the CSV, Parquet or .npy file the model was trained on; "
                   "Enter for none): ").strip()
    return (Path(answer).expanduser() if answer else None), True, None


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def run_serve(args: argparse.Namespace) -> int:
    import signal
    from dataclasses import replace

    from studio.core.model.artifact import load
    from studio.core.monitor.reference_choice import remember_reference
    from studio.core.serve.deploy import DeployOptions, deploy
    from studio.core.tasks import Progress
    from studio.core.versions.references import resolve

    model = resolve(args.model)
    artifact = load(model.path, trust=args.trust)
    reference, chosen_now, reference_note = _chosen_reference(args, artifact.path)
    options = DeployOptions(runtime=args.runtime, tag=args.tag, port=args.port, cpus=args.cpus,
                            memory=args.memory, ready_timeout=args.ready_timeout,
                            serve_failed_parity=args.serve_failed_parity,
                            serving=replace(_serving_options(args,
                                                             _registered(args, model, artifact)),
                                            reference_data=reference),
                            image=_image_options(args))
    deployment = deploy(artifact, options, progress=Progress(on_partial=log_line))
    if chosen_now:
        try:
            remember_reference(artifact.path, reference)
        except StudioError as exc:  # served all the same: only the next serve will ask again
            print(f"slipway: warning: the reference data choice is not remembered: {exc}",
                  file=sys.stderr)
    if reference_note:
        print(reference_note, file=sys.stderr)
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


def _predict_target(args: argparse.Namespace) -> tuple[str, str] | None:
    """(base URL, route) from the URL and --route; None (after saying why) when they disagree."""
    from studio.core.serve.client import split_route

    base, named = split_route(args.url)
    if args.route and named and args.route != named:
        print(f"slipway: error: the URL names the route {named} and --route says {args.route}: "
              "give one of them.", file=sys.stderr)
        return None
    return base, args.route or named or "/predict"


def _sample_body(client, route: str):
    """The model's sample body for `route`, from its server's /schema; None after saying why."""
    from studio.core.serve.client import sample_body

    reply = client.request("GET", "/schema")
    body = sample_body(reply.body, route) if reply.ok and isinstance(reply.body, dict) else None
    if body is None:
        print(f"slipway: error: the server gives no sample body for {route} (GET /schema: HTTP "
              f"{reply.status}); pass one with --data.", file=sys.stderr)
        return None
    print(f"Sending the model's sample body for {route} (give your own with --data)",
          file=sys.stderr)
    return body


def run_predict(args: argparse.Namespace) -> int:
    import json

    from studio.core.serve.client import ModelClient

    target = _predict_target(args)
    if target is None:
        return ExitStatus.USAGE
    base, route = target
    if args.data is None:
        with ModelClient(base, api_key=api_key(args)) as client:
            body = _sample_body(client, route)
        return _send(base, route, body, args) if body is not None else ExitStatus.FAILED
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
    return _send(base, route, body, args)


def _send(base: str, route: str, body, args: argparse.Namespace) -> int:
    import json

    from studio.core.serve.client import ModelClient

    with ModelClient(base, api_key=api_key(args)) as client:
        reply = client.predict(body, route)
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


