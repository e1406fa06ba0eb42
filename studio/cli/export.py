"""`slipway export`: the Export stage without a screen.

    slipway export MODEL --image REF --out DIR [options]   manifests for the image, checked, then
                                                           written (nothing is written when a
                                                           check fails)
    slipway export --check DIR [--k8s-version V]           the same checks on a folder a person
                                                           has edited

Exit status: 0 when every check passed, 5 (ExitStatus.CHECKS_FAILED) with each failed check
printed otherwise, 2 for an option that cannot be used (the flag is named). A checking tool that is
not installed (Checkov, kubectl, docker-compose) is said so, and the other checks still decide.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from studio.cli.common import MODEL_HELP, add_trust_option, model_path
from studio.core.errors import ExitStatus

COMMANDS = ("export",)

FLAGS = {"kubernetes_version": "--k8s-version", "canary_image": "--canary",
         "environment": "--env", "image": "--image"}
"""ExportOptions fields whose flag is not the field's name with dashes."""


def add_commands(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export", help="Compose, Kubernetes and KServe manifests, checked before they are written")
    export.add_argument("model", nargs="?",
                        help="the model the image serves (file or folder)" + MODEL_HELP)
    export.add_argument("--check", metavar="DIR",
                        help="check a folder of manifests instead of exporting")
    export.add_argument("--image", help="the image `slipway build` made, pinned by tag")
    export.add_argument("--out", metavar="DIR", help="the folder to write the manifests to")
    add_trust_option(export)
    export.add_argument("--name", help="name of the Kubernetes objects (default: the model's)")
    export.add_argument("--namespace", help="namespace (default: the name)")
    export.add_argument("--replicas", type=int)
    for flag, example in (("cpu", "500m"), ("memory", "512Mi"), ("ephemeral-storage", "128Mi")):
        export.add_argument(f"--{flag}", metavar="Q", help=f"request, e.g. {example}")
        export.add_argument(f"--{flag}-limit", metavar="Q", help="limit (default: as shipped)")
    export.add_argument("--port", type=int, help="the Service's port and Compose's host port")
    export.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable for the server (repeatable)")
    export.add_argument("--api-key-env", metavar="VAR",
                        help="the variable holding the API key (default: what the image reads)")
    export.add_argument("--api-key-secret", metavar="NAME",
                        help="the Secret holding the key in Kubernetes (default NAME-api-key)")
    export.add_argument("--min-replicas", type=int)
    export.add_argument("--max-replicas", type=int)
    export.add_argument("--target-cpu", type=int, metavar="PERCENT")
    export.add_argument("--canary", metavar="IMAGE", help="a second version beside the first")
    export.add_argument("--canary-percent", type=int, metavar="PERCENT")
    export.add_argument("--k8s-version", metavar="V", help="the Kubernetes version to validate "
                                                           "against (default: the oldest of the "
                                                           "three newest the validator knows)")
    export.add_argument("--kserve", action="store_true", help="add a KServe InferenceService")
    export.add_argument("--servicemonitor", action="store_true",
                        help="add a Prometheus Operator ServiceMonitor")
    export.add_argument("--ingress-host", metavar="HOST", help="add an Ingress for this host")
    export.add_argument("--json", action="store_true", help="print the report as JSON")
    export.set_defaults(run=run_export)


def _environment(pairs: list[str]) -> dict[str, str]:
    from studio.core.export.options import ExportOptionsError

    result = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals:
            raise ExportOptionsError(f"--env {pair!r} is not NAME=VALUE.",
                                     "Write it as --env LOG_LEVEL=info.", field="environment")
        result[name] = value
    return result


def _options(args: argparse.Namespace, model):
    from studio.core.export.options import ExportOptionsError, export_options

    name = args.name or model.default_name
    values = dict(image=args.image, name=name, namespace=args.namespace or name,
                  replicas=args.replicas, cpu=args.cpu, cpu_limit=args.cpu_limit,
                  memory=args.memory, memory_limit=args.memory_limit,
                  ephemeral_storage=args.ephemeral_storage,
                  ephemeral_storage_limit=args.ephemeral_storage_limit, port=args.port,
                  environment=_environment(args.env), api_key_env=args.api_key_env,
                  api_key_secret=args.api_key_secret, min_replicas=args.min_replicas,
                  max_replicas=args.max_replicas, target_cpu=args.target_cpu,
                  canary_image=args.canary, canary_percent=args.canary_percent,
                  kubernetes_version=args.k8s_version, kserve=args.kserve,
                  servicemonitor=args.servicemonitor, ingress_host=args.ingress_host)
    try:
        return export_options(**values)
    except ExportOptionsError as exc:
        flag = FLAGS.get(exc.field, "--" + exc.field.replace("_", "-"))
        raise ExportOptionsError(f"{flag}{exc.message.removeprefix(exc.field)}", exc.hint,
                                 field=exc.field) from None


def _print_report(report, written: list[Path], as_json: bool) -> None:
    if as_json:
        print(json.dumps({**report.to_json(), "written": [str(p) for p in written]}, indent=2))
        return
    for run in report.tools:
        print(f"  {'ran' if run.ran else 'not run'}: {run.tool} ({run.detail})")
    for line in report.notes + report.skip_summary():
        print(f"  note: {line}")
    for finding in report.findings:
        print(f"slipway: failed: {finding.line()}", file=sys.stderr)
    if report.passed:
        print(f"Every check passed on {len(report.documents)} files.")


def run_export(args: argparse.Namespace) -> int:
    from studio.core.tasks import Progress

    progress = Progress(on_update=lambda _fraction, message: print(
        f"{message}…", file=sys.stderr, flush=True) if not args.json else None)
    if args.check:
        return _run_check(args, progress)
    missing = [flag for flag, value in (("MODEL", args.model), ("--image", args.image),
                                        ("--out", args.out)) if not value]
    if missing:
        print(f"slipway: error: export needs {', '.join(missing)} (or --check DIR)",
              file=sys.stderr)
        return ExitStatus.USAGE

    from studio.core.export.documents import build_export
    from studio.core.export.facts import from_image
    from studio.core.export.write import check_export, write_export
    from studio.core.model.artifact import load

    artifact = load(model_path(args.model), trust=args.trust)
    model = from_image(args.image, artifact)
    options = _options(args, model)
    export = build_export(options, model)
    report = check_export(export, progress)
    written = write_export(export, args.out, report) if report.passed else []
    _print_report(report, written, args.json)
    if not report.passed:
        print("slipway: nothing was written: the manifests failed the checks above.",
              file=sys.stderr)
        return ExitStatus.CHECKS_FAILED
    if not args.json:
        out = Path(args.out)
        print(f"Wrote {len(written)} files to {out}. Next: kubectl apply -k "
              f"{out / 'kubernetes/overlays/production'} (docs/export.md walks through it).")
    return ExitStatus.OK


def _run_check(args: argparse.Namespace, progress) -> int:
    from studio.core.export.options import export_options
    from studio.core.export.validate import check_folder

    folder = Path(args.check)
    if not folder.is_dir():
        print(f"slipway: error: {folder} is not a folder of manifests", file=sys.stderr)
        return ExitStatus.USAGE
    # Only the version is an option here; the image stands in so the version is checked alike.
    version = export_options(image="check:only", name="check", namespace="check",
                             kubernetes_version=args.k8s_version).kubernetes_version
    report = check_folder(folder, version, progress)
    _print_report(report, [], args.json)
    return ExitStatus.OK if report.passed else ExitStatus.CHECKS_FAILED
