"""`slipway inspect`: the Model stage without a screen."""

from __future__ import annotations

import argparse

from studio.cli.common import (
    MODEL_HELP,
    add_record_option,
    add_trust_option,
    model_path,
    record_version,
)
from studio.core.errors import ExitStatus
from studio.core.model.schema import shape_text
from studio.core.units import human_size, printable, text_table

COMMANDS = ("inspect",)


def add_commands(commands: argparse._SubParsersAction) -> None:
    inspect = commands.add_parser("inspect", help="describe a model file or MLflow folder")
    inspect.add_argument("file",
                         help="model file (.onnx, .joblib, .pkl, .skops, ...) or MLflow folder"
                              + MODEL_HELP)
    inspect.add_argument("--json", action="store_true", help="print the ModelSchema as JSON")
    add_trust_option(inspect)
    inspect.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                         help="stop loading after this long (default 120)")
    add_record_option(inspect)
    inspect.set_defaults(run=run_inspect)


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
        lines += [f"  {key}: {value}" for key, value in info.properties.items()]
    for key, value in meta.properties.items():
        lines.append(f"  {key}: {value}")
    for warning in meta.warnings:
        lines.append(f"warning: {warning}")
    return "\n".join(printable(line) for line in lines)  # the file's text, never its escapes


def run_inspect(args: argparse.Namespace) -> int:
    from studio.core.model.artifact import load
    from studio.core.versions.registry import record_loaded

    artifact = load(model_path(args.file), trust=args.trust, timeout=args.timeout)
    print(artifact.schema.to_json() if args.json else summary(artifact))
    record_version(args, lambda: record_loaded(artifact))
    return ExitStatus.OK
