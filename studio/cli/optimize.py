"""`slipway convert` and `slipway optimize`: the Optimize stage without a screen."""

from __future__ import annotations

import argparse
import sys

from studio.cli.common import (
    MODEL_HELP,
    add_record_option,
    add_trust_option,
    model_path,
    record_version,
)
from studio.core.errors import ExitStatus
from studio.core.optimize.report import conversion_lines, optimization_lines

COMMANDS = ("convert", "optimize")


def add_commands(commands: argparse._SubParsersAction) -> None:
    convert = commands.add_parser("convert", help="convert a model to ONNX and check parity")
    convert.add_argument("model", help="scikit-learn, XGBoost or LightGBM model, or MLflow folder"
                                       + MODEL_HELP)
    convert.add_argument("-o", "--output", required=True, metavar="OUT.onnx")
    convert.add_argument("--opset", type=int, default=17, help="target ONNX opset (default 17)")
    add_trust_option(convert)
    _add_tolerance_options(convert)
    convert.set_defaults(run=run_convert)

    optimize = commands.add_parser("optimize", help="make an ONNX model smaller or faster")
    optimize.add_argument("model", help="an ONNX model" + MODEL_HELP)
    optimize.add_argument("-o", "--output", required=True, metavar="OUT.onnx")
    kinds = optimize.add_mutually_exclusive_group(required=True)
    for flag, kind, text in (("--int8", "int8", "dynamic int8 quantization"),
                             ("--int8-static", "int8-static",
                              "static int8, calibrated on --reference"),
                             ("--fp16", "fp16", "float16 conversion"),
                             ("--graph", "graph", "graph optimization")):
        kinds.add_argument(flag, dest="optimization", action="store_const", const=kind, help=text)
    _add_tolerance_options(optimize)
    optimize.set_defaults(run=run_optimize)


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
    add_record_option(parser)


def _tolerance(args: argparse.Namespace, default):
    from studio.core.optimize.parity import Tolerance

    base = default or Tolerance()
    return base.model_copy(update={k: v for k, v in (("atol", args.atol), ("rtol", args.rtol),
                                                     ("min_label_agreement", args.min_agreement))
                                   if v is not None})


def run_convert(args: argparse.Namespace) -> int:
    from studio.core.model.artifact import load
    from studio.core.optimize.convert import convert
    from studio.core.versions.registry import record_made

    source = load(model_path(args.model), trust=args.trust, timeout=args.timeout)
    result = convert(source, args.output, opset=args.opset, reference=args.reference,
                     tolerance=_tolerance(args, None), timeout=args.timeout)
    report = result.report
    print(report.model_dump_json(indent=2) if args.json else "\n".join(conversion_lines(report)))
    record_version(args, lambda: record_made(source, result.artifact, report))
    if not report.parity.passed:
        print(f"slipway: error: the ONNX model was written to {report.output_path} but FAILED its "
              "parity check; do not serve it before looking at the differences above.",
              file=sys.stderr)
        return ExitStatus.PARITY_FAILED
    return ExitStatus.OK


def run_optimize(args: argparse.Namespace) -> int:
    from studio.core.model.artifact import detect_format, load
    from studio.core.optimize.optimize import DEFAULT_TOLERANCES, OptimizationError, optimize
    from studio.core.versions.registry import record_made

    path = model_path(args.model)
    if path.is_file() and detect_format(path) != "onnx":
        raise OptimizationError(f"'{path.name}' is not an ONNX model.",
                                "Convert it first: slipway convert MODEL -o MODEL.onnx, then "
                                "optimize the .onnx file.")
    source = load(path, trust=False, timeout=args.timeout)
    result = optimize(source, args.optimization, args.output, reference=args.reference,
                      tolerance=_tolerance(args, DEFAULT_TOLERANCES[args.optimization]))
    report = result.report
    if args.json:
        print(report.model_dump_json(indent=2))
    if not report.applicable:
        print(f"slipway: error: {report.note} No file was written.", file=sys.stderr)
        return ExitStatus.NOT_LOADABLE
    if not args.json:
        print("\n".join(optimization_lines(report)))
    record_version(args, lambda: record_made(source, result.artifact, report))
    if not report.parity.passed:
        print(f"slipway: error: {report.output_path} was written but FAILED its parity check.",
              file=sys.stderr)
        return ExitStatus.PARITY_FAILED
    return ExitStatus.OK
