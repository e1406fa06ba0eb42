"""`slipway`: the studio's journey without a screen.

    slipway                     open the app
    slipway MODEL               open the app on a model
    slipway inspect FILE        describe a model (--json for the ModelSchema)
    slipway convert MODEL -o OUT.onnx       to ONNX, with a parity check
    slipway optimize MODEL.onnx -o OUT.onnx (--int8 | --int8-static | --fp16 | --graph)
    slipway build MODEL [--tag T] [--base-image I]      a serving image (Docker)
    slipway serve MODEL [--runtime docker|process]      run it until Ctrl-C
    slipway predict URL --data '{...}'                  one request to a served model
    slipway containers [--clean]                       the containers the studio started
    slipway load URL (--concurrency N | --rate R)      a load test (see studio/cli_load.py)
    slipway sweep URL --slo-p99 50ms                   the highest rate meeting a p99 objective
    slipway monitor URL [--once --json]                metrics and drift (studio/cli_monitor.py)

Exit status: 0 success, 1 a build, a server or a request failed, 2 bad usage, 3 the file is not a
model that can be loaded or converted (or the optimization cannot help it), 4 the new model was
written but failed its parity check.
Errors print one line with the reason and the next step; no traceback reaches the terminal.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from studio import __version__, cli_load, cli_monitor
from studio.core.errors import Cancelled, StudioError, TrustRequired
from studio.core.reports import conversion_lines, optimization_lines, text_table
from studio.core.schema import shape_text
from studio.core.units import human_size

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_LOADABLE = 3
EXIT_PARITY_FAILED = 4
COMMANDS = ("inspect", "convert", "optimize", "build", "serve", "predict", "containers", "load",
            "sweep", "monitor")


def summary(artifact) -> str:
    """The readable form of `inspect`: what a person checks first, in the order they check it."""
    schema = artifact.schema
    meta = schema.metadata
    lines = [
        f"{schema.name}  ({meta.format}, {schema.task})",
        f"  file     {meta.path}",
        f"  size     {human_size(meta.file_size)}",
        f"  sha256   {meta.sha256}",
    ]
    if meta.estimator:
        lines.append(f"  model    {meta.estimator}")
    if meta.steps:
        lines.append("  steps    " + " -> ".join(f"{s.name} ({s.type.rsplit('.', 1)[-1]})"
                                                for s in meta.steps))
    lines += ["", "Inputs"]
    lines += text_table([["name", "type", "shape"]]
                    + [[t.name, t.dtype, shape_text(t.shape)] for t in schema.inputs])
    if schema.features:
        lines += ["", f"Features ({len(schema.features)})"]
        rows = [["name", "kind", "type", "categories / example"]]
        for f in schema.features:
            detail = ", ".join(map(str, f.categories)) if f.categories else (
                "" if f.example is None else f"e.g. {f.example}")
            rows.append([f.name, f.kind, f.dtype, detail[:60]])
        lines += text_table(rows)
    lines += ["", "Outputs"]
    lines += text_table([["name", "role", "type", "shape"]]
                    + [[o.name, o.role, o.dtype, shape_text(o.shape)] for o in schema.outputs])
    if schema.class_names:
        lines.append("  classes  " + ", ".join(map(str, schema.class_names)))
    if meta.onnx:
        info = meta.onnx
        opsets = ", ".join(f"{d} {v}" for d, v in info.opsets.items())
        lines += ["", "ONNX",
                  f"  IR {info.ir_version}, opsets {opsets}, producer "
                  f"{info.producer or '?'} {info.producer_version}".rstrip(),
                  f"  {info.node_count} nodes, {info.parameter_count:,} parameters",
                  "  operators " + ", ".join(f"{op} {n}" for op, n in info.operators.items())]
    for key, value in meta.properties.items():
        lines.append(f"  {key}: {value}")
    for warning in meta.warnings:
        lines.append(f"warning: {warning}")
    return "\n".join(lines)


def _inspect(args: argparse.Namespace) -> int:
    from studio.core.artifacts import load

    artifact = load(args.file, trust=args.trust, timeout=args.timeout)
    print(artifact.schema.to_json() if args.json else summary(artifact))
    return EXIT_OK


def _tolerance(args: argparse.Namespace, default):
    from studio.core.parity import Tolerance

    base = default or Tolerance()
    return base.model_copy(update={k: v for k, v in (("atol", args.atol), ("rtol", args.rtol),
                                                     ("min_label_agreement", args.min_agreement))
                                   if v is not None})


def _convert(args: argparse.Namespace) -> int:
    from studio.core.artifacts import load
    from studio.core.convert import convert

    source = load(args.model, trust=args.trust, timeout=args.timeout)
    result = convert(source, args.output, opset=args.opset, reference=args.reference,
                     tolerance=_tolerance(args, None), timeout=args.timeout)
    report = result.report
    print(report.model_dump_json(indent=2) if args.json else "\n".join(conversion_lines(report)))
    if not report.parity.passed:
        print(f"slipway: error: the ONNX model was written to {report.output_path} but FAILED its "
              "parity check; do not serve it before looking at the differences above.",
              file=sys.stderr)
        return EXIT_PARITY_FAILED
    return EXIT_OK


def _optimize(args: argparse.Namespace) -> int:
    from studio.core.artifacts import detect_format, load
    from studio.core.optimize import DEFAULT_TOLERANCES, OptimizationError, optimize

    model_path = Path(args.model)
    if model_path.is_file() and detect_format(model_path) != "onnx":
        raise OptimizationError(f"'{model_path.name}' is not an ONNX model.",
                                "Convert it first: slipway convert MODEL -o MODEL.onnx, then "
                                "optimize the .onnx file.")
    source = load(args.model, trust=False, timeout=args.timeout)
    result = optimize(source, args.optimization, args.output, reference=args.reference,
                      tolerance=_tolerance(args, DEFAULT_TOLERANCES[args.optimization]))
    report = result.report
    if args.json:
        print(report.model_dump_json(indent=2))
    if not report.applicable:
        print(f"slipway: error: {report.note} No file was written.", file=sys.stderr)
        return EXIT_NOT_LOADABLE
    if not args.json:
        print("\n".join(optimization_lines(report)))
    if not report.parity.passed:
        print(f"slipway: error: {report.output_path} was written but FAILED its parity check.",
              file=sys.stderr)
        return EXIT_PARITY_FAILED
    return EXIT_OK


def _log_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _serving_options(args: argparse.Namespace):
    from studio.core.bundle import ServingOptions

    reference = getattr(args, "reference", None)
    return ServingOptions(version=args.model_version, batching=not args.no_batching,
                          api_key_env=args.api_key_env,
                          reference_data=Path(reference) if reference else None)


def _image_options(args: argparse.Namespace):
    from studio.core.bundle import ImageOptions

    return ImageOptions(base_image=args.base_image,
                        wheelhouse=Path(args.wheelhouse) if args.wheelhouse else None)


def _build(args: argparse.Namespace) -> int:
    from studio.core.artifacts import load
    from studio.core.deploy import DeployOptions, build_image

    artifact = load(args.model, trust=args.trust)
    options = DeployOptions(tag=args.tag, serving=_serving_options(args),
                            image=_image_options(args))
    built = build_image(artifact, options, on_log=_log_line)
    print(f"{built.tag} {built.image_id}")
    return EXIT_OK


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _serve(args: argparse.Namespace) -> int:
    import signal

    from studio.core.artifacts import load
    from studio.core.deploy import DeployOptions, deploy

    artifact = load(args.model, trust=args.trust)
    options = DeployOptions(runtime=args.runtime, tag=args.tag, port=args.port, cpus=args.cpus,
                            memory=args.memory, ready_timeout=args.ready_timeout,
                            serve_failed_parity=args.serve_failed_parity,
                            serving=_serving_options(args), image=_image_options(args))
    deployment = deploy(artifact, options, on_log=_log_line)
    signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop cleans up like Ctrl-C
    print(f"{deployment.name} is ready at {deployment.url} ({deployment.runtime} runtime). "
          "Ctrl-C stops it.", flush=True)
    try:
        for line in deployment.follow_logs():
            print(line, file=sys.stderr, flush=True)
        reason = deployment.exit_reason() or "stopped"
        print(f"slipway: error: the model server {reason}.", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("Stopping…", file=sys.stderr)
        return EXIT_OK
    finally:
        deployment.stop()


def _predict(args: argparse.Namespace) -> int:
    import json

    from studio.core.client import ModelClient

    text = args.data
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as exc:
            print(f"slipway: error: cannot read {text[1:]}: {exc.strerror}", file=sys.stderr)
            return EXIT_USAGE
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        print(f"slipway: error: --data is not valid JSON: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with ModelClient(args.url, api_key=args.api_key) as client:
        reply = client.predict(body, args.route)
    print(json.dumps(reply.body, indent=2) if reply.is_json else reply.body)
    if not reply.ok:
        error = reply.body.get("error") if isinstance(reply.body, dict) else None
        print(f"slipway: error: HTTP {reply.status}" + (f": {error}" if error else ""),
              file=sys.stderr)
        return EXIT_FAILED
    print(f"HTTP {reply.status} in {reply.latency_ms:.1f} ms", file=sys.stderr)
    return EXIT_OK


def _containers(args: argparse.Namespace) -> int:
    from studio.core.runtimes.docker import MODEL_LABEL, DockerRuntime

    runtime = DockerRuntime()
    containers = runtime.managed()
    rows = [["container", "model", "status", "ports"]]
    for container in containers:
        ports = ", ".join(f"{b[0]['HostIp']}:{b[0]['HostPort']}->{p}"
                          for p, b in (container.attrs["NetworkSettings"]["Ports"] or {}).items() if b)
        rows.append([container.name, container.labels.get(MODEL_LABEL, "?"), container.status,
                     ports])
    if len(rows) > 1:
        print("\n".join(text_table(rows, indent="")))
    if args.clean:
        print(f"Removed {runtime.cleanup()} container(s).")
    elif len(rows) == 1:
        print("The studio has no containers on this engine.")
    return EXIT_OK


def _add_image_options(parser: argparse.ArgumentParser) -> None:
    from studio.core.bundle import DEFAULT_BASE_IMAGE

    parser.add_argument("--tag", help="image tag (default slipway/NAME:VERSION)")
    parser.add_argument("--base-image", default=DEFAULT_BASE_IMAGE,
                        help=f"image to build on (default {DEFAULT_BASE_IMAGE})")
    parser.add_argument("--wheelhouse", metavar="DIR",
                        help="wheels for the image (default: downloaded once and cached)")
    parser.add_argument("--trust", action="store_true",
                        help="allow loading files that run code when loaded (pickle, joblib)")
    parser.add_argument("--model-version", default="1", help="version to serve as (default 1)")
    parser.add_argument("--no-batching", action="store_true", help="turn micro-batching off")
    parser.add_argument("--api-key-env", metavar="VAR",
                        help="require the API key held in this environment variable")


def _add_tolerance_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reference", metavar="DATA",
                        help="golden rows from a CSV, Parquet or .npy file (default: sampled)")
    parser.add_argument("--atol", type=float, help="absolute tolerance on numbers")
    parser.add_argument("--rtol", type=float, help="relative tolerance on numbers")
    parser.add_argument("--min-agreement", type=float, metavar="FRACTION",
                        help="share of labels that must not change (1.0 = all)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS",
                        help="stop loading or converting after this long (default 300)")


def _command_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="slipway", description="Slipway Studio on the command line.")
    parser.add_argument("--version", action="version", version=f"slipway {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="print error details")
    commands = parser.add_subparsers(dest="command", required=True)
    inspect = commands.add_parser("inspect", help="describe a model file or MLflow folder")
    inspect.add_argument("file", help="model file (.onnx, .joblib, .pkl, .skops, ...) or MLflow folder")
    inspect.add_argument("--json", action="store_true", help="print the ModelSchema as JSON")
    inspect.add_argument("--trust", action="store_true",
                         help="allow loading files that run code when loaded (pickle, joblib)")
    inspect.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                         help="stop loading after this long (default 120)")
    inspect.set_defaults(run=_inspect)

    convert = commands.add_parser("convert", help="convert a model to ONNX and check parity")
    convert.add_argument("model", help="scikit-learn, XGBoost or LightGBM model, or MLflow folder")
    convert.add_argument("-o", "--output", required=True, metavar="OUT.onnx")
    convert.add_argument("--opset", type=int, default=17, help="target ONNX opset (default 17)")
    convert.add_argument("--trust", action="store_true",
                         help="allow loading files that run code when loaded (pickle, joblib)")
    _add_tolerance_options(convert)
    convert.set_defaults(run=_convert)

    optimize = commands.add_parser("optimize", help="make an ONNX model smaller or faster")
    optimize.add_argument("model", help="an ONNX model")
    optimize.add_argument("-o", "--output", required=True, metavar="OUT.onnx")
    kinds = optimize.add_mutually_exclusive_group(required=True)
    for flag, kind, text in (("--int8", "int8", "dynamic int8 quantization"),
                             ("--int8-static", "int8-static", "static int8, calibrated on --reference"),
                             ("--fp16", "fp16", "float16 conversion"),
                             ("--graph", "graph", "graph optimization")):
        kinds.add_argument(flag, dest="optimization", action="store_const", const=kind, help=text)
    _add_tolerance_options(optimize)
    optimize.set_defaults(run=_optimize)

    build = commands.add_parser("build", help="build a serving image with Docker")
    build.add_argument("model", help="a model file or MLflow folder (converted to ONNX if needed)")
    _add_image_options(build)
    build.add_argument("--reference", metavar="DATA", help="reference data for drift metrics")
    build.set_defaults(run=_build)

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
    serve.set_defaults(run=_serve)

    predict = commands.add_parser("predict", help="send one request to a served model")
    predict.add_argument("url", help="the server's base URL, e.g. http://127.0.0.1:8000")
    predict.add_argument("--data", required=True, help="JSON body, or @file.json")
    predict.add_argument("--route", default="/predict",
                         help="/predict, /predict/batch or /v2/models/NAME/infer")
    predict.add_argument("--api-key", help="API key, when the server requires one")
    predict.set_defaults(run=_predict)

    containers = commands.add_parser("containers", help="list the containers the studio started")
    containers.add_argument("--clean", action="store_true", help="stop and remove them all")
    cli_load.add_commands(commands)
    cli_monitor.add_command(commands)
    containers.set_defaults(run=_containers)
    return parser


def _app_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slipway",
        description="Slipway Studio: from a model file to a measured, monitored service. "
                    f"Commands: {', '.join(COMMANDS)} (slipway COMMAND --help).",
    )
    parser.add_argument("--version", action="version", version=f"slipway {__version__}")
    parser.add_argument("model", nargs="?", help="open the app on this model file or folder")
    return parser


def _report(exc: StudioError, verbose: bool) -> None:
    print(f"slipway: error: {exc}", file=sys.stderr)
    if isinstance(exc, TrustRequired) and exc.reasons:
        print("  the file would import: " + ", ".join(exc.reasons), file=sys.stderr)
    if verbose and exc.detail:
        print(exc.detail, file=sys.stderr)


def _exit_status(error: StudioError) -> int:
    """3 for what cannot be loaded or converted; 1 for builds, servers and requests that failed."""
    from studio.core.bundle import BundleError
    from studio.core.client import ServerUnreachable
    from studio.core.drift import DriftError
    from studio.core.loadtest import LoadTestError
    from studio.core.metrics import MetricsError
    from studio.core.payloads import PayloadError
    from studio.core.runtimes.base import DeploymentError

    if isinstance(error, (DeploymentError, BundleError, ServerUnreachable, MetricsError)):
        return EXIT_FAILED
    if isinstance(error, (LoadTestError, PayloadError, DriftError)):
        return EXIT_USAGE
    return EXIT_NOT_LOADABLE


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    first_word = next((a for a in argv if not a.startswith("-")), None)
    if first_word in COMMANDS:
        args = _command_parser().parse_args(argv)
        try:
            return args.run(args)
        except StudioError as exc:
            _report(exc, args.verbose)
            return _exit_status(exc)
        except Cancelled:
            return 130
        except KeyboardInterrupt:
            return 130
        except BrokenPipeError:  # `slipway load --json | head`: the reader left, nothing to report
            sys.stdout = None  # type: ignore[assignment]  # no flush at exit into a closed pipe
            return EXIT_OK
    args = _app_parser().parse_args(argv)
    from studio.ui.app import run_app

    return run_app(args.model)


if __name__ == "__main__":
    sys.exit(main())
