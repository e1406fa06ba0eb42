"""A self-contained build context for one model: Dockerfile, server, model, config and wheels.

    bundle/
      Dockerfile        from serving_templates/Dockerfile.tmpl
      .dockerignore
      model.onnx
      ...               the model's external data files, where model.onnx expects them
      serving.json      what the server reads: model, name, version, schema, batching, limits, auth
      server/           serving_templates/server, copied by path (the image has no studio in it)
      wheels/           the server's packages for the image's platform, from the wheelhouse cache

The wheelhouse is filled on the host with `pip download` for the image's platform and Python, and
kept between builds; the image installs from it with no network, which is also what proxied and
air-gapped sites need. Versions are pinned to the ones installed next to the studio, so the image
runs the same ONNX Runtime the parity checks ran.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from string import Template
from typing import Any

import onnx

from studio.core.errors import ExitStatus, StudioError
from studio.core.model.artifact import ModelArtifact
from studio.core.model.datasets import read_table
from studio.core.model.formats import onnx as onnx_format
from studio.core.monitor.reference import ReferenceProfile, model_profile
from studio.core.tasks import Progress, quiet
from studio.core.workspace import cache_root

TEMPLATES = Path(__file__).resolve().parents[3] / "serving_templates"
SERVER_SOURCE = TEMPLATES / "server" / "slipway_server"
# The server's own dependencies: what goes into every image.
SERVER_PACKAGES = ["onnxruntime", "numpy", "starlette", "uvicorn", "uvloop", "httptools",
                   "orjson", "prometheus-client"]
DEFAULT_BASE_IMAGE = "python:3.11-slim"
# Wheels for glibc 2.28 and older run on every Debian/Ubuntu base from bullseye/focal on; pip does
# not expand a manylinux_2_28 tag to the older ones by itself, so the whole list is passed.
DEFAULT_GLIBC = (2, 28)
DEFAULT_PYTHON = "3.11"
SERVER_PORT = 8000
# A version is written into the Dockerfile, the image's labels and its tag: only characters that
# mean nothing to any of them.
VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
VERSION_RULE = ("a version is 1 to 64 letters, digits, '.', '_', '-' and '+', starting with a "
                "letter or digit")
# External data files are named in the Dockerfile and .dockerignore, which have their own
# quoting and wildcards: names made of these characters need neither.
DATA_FILE_PATTERN = re.compile(r"[A-Za-z0-9._+-]+(/[A-Za-z0-9._+-]+)*")
STOP_MARGIN_S = 5.0
BUNDLE_ENTRIES = {"Dockerfile", ".dockerignore", "model.onnx", "serving.json", "server", "wheels",
                  "server.log"}


class BundleError(StudioError):
    """The build context could not be written (no ONNX model, wheels not downloadable...)."""

    exit_status = ExitStatus.FAILED


@dataclass
class ServingOptions:
    version: str = "1"
    name: str | None = None
    batching: bool = True
    max_batch_size: int = 32
    max_wait_ms: float = 2.0
    max_body_bytes: int | None = None
    """None: sized to the model's inputs (see body_limit)."""
    max_batch_rows: int = 1024
    max_concurrency: int = 512
    api_key_env: str | None = None
    """The environment variable holding the API key the server requires; None: no key."""
    protect_metrics: bool = False
    """/metrics asks for the API key too (it needs api_key_env)."""
    ready_pause_s: float = 0.5
    """After SIGTERM the server answers /ready with 503 but keeps serving this long, so a load
    balancer stops sending first (serving.json's shutdown.ready_pause_s)."""
    drain_timeout_s: float = 30.0
    """Then in-flight requests get this long to finish (shutdown.drain_timeout_s)."""
    threads: int = 1
    reference: ReferenceProfile | None = None
    """The profile drift is measured against; None: one is made when bundling, from
    `reference_data` when given, else provisional bins from the schema."""
    reference_data: Path | None = None

    @property
    def stop_timeout_s(self) -> float:
        """How long stopping the server may take before it is killed: its pause and drain, and
        a margin for the exit itself."""
        return self.ready_pause_s + self.drain_timeout_s + STOP_MARGIN_S


def check_serving_options(serving: ServingOptions) -> None:
    """Refuse options no server can be built from, before anything is converted or built."""
    if not VERSION_PATTERN.fullmatch(serving.version or ""):
        raise BundleError(f"{serving.version!r} cannot be the model's version: {VERSION_RULE}.",
                          "Choose a version such as 1, 2.0.1 or 2024-06-01.")
    for name in ("ready_pause_s", "drain_timeout_s"):
        value = getattr(serving, name)
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise BundleError(f"The shutdown setting {name} must be a number of seconds >= 0, "
                              f"not {value!r}.", "Give it as seconds, e.g. 30.")
    if serving.protect_metrics and not serving.api_key_env:
        raise BundleError("Protecting /metrics needs an API key, and none is required.",
                          "Name the variable that holds the key (--api-key-env), or leave "
                          "/metrics open.")


def manylinux_platforms(glibc: tuple[int, int] = DEFAULT_GLIBC, arch: str = "x86_64") -> list[str]:
    """Every manylinux tag a base image with this glibc runs, newest first."""
    major, minor = glibc
    tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    return tags + [f"{name}_{arch}" for m, name in legacy.items() if m <= minor]


@dataclass
class ImageOptions:
    base_image: str = DEFAULT_BASE_IMAGE
    glibc: tuple[int, int] = DEFAULT_GLIBC
    python_version: str = DEFAULT_PYTHON
    wheelhouse: Path | None = None
    """A folder of wheels to use as it is (offline sites); default: the studio's cache."""
    wheelhouse_cache: Path | None = None
    """Where downloaded wheels are kept between builds; default: the studio's cache folder."""
    extra_packages: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Bundle:
    path: Path
    model_name: str
    version: str
    sha256: str
    with_wheels: bool
    data_files: tuple[str, ...] = ()
    """The model's external data files, relative to model.onnx."""

    @property
    def config_path(self) -> Path:
        return self.path / "serving.json"

    @property
    def server_path(self) -> Path:
        return self.path / "server"

    @property
    def default_tag(self) -> str:
        return f"slipway/{self.model_name.lower()}:{self.version.replace('+', '-')}"


def served_name(artifact: ModelArtifact) -> str:
    """The file's stem, made safe for URLs and Kubernetes names (light_squeezenet stays as is)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", artifact.schema.name).strip("-") or "model"


JSON_BYTES_PER_VALUE = 24  # "-0.123456789012345678," and friends
MIN_BODY_BYTES = 1024 * 1024
MAX_BODY_BYTES = 256 * 1024 * 1024


def body_limit(schema, max_batch_rows: int) -> int:
    """A request-size limit that fits the model: a full batch of rows, or four tensor requests,
    as JSON; never under 1 MiB (small tabular models) nor over 256 MiB."""
    if schema.features:
        needed = len(schema.features) * JSON_BYTES_PER_VALUE * max_batch_rows
    else:
        values = sum(math.prod(d if isinstance(d, int) and d > 0 else 1 for d in t.shape)
                     for t in schema.inputs)
        needed = values * JSON_BYTES_PER_VALUE * 4
    return int(min(max(needed, MIN_BODY_BYTES), MAX_BODY_BYTES))


def serving_config(artifact: ModelArtifact, options: ServingOptions) -> dict[str, Any]:
    schema = artifact.schema
    return {
        "model_file": "model.onnx",
        "name": options.name or served_name(artifact),
        "version": options.version,
        "sha256": schema.metadata.sha256,
        "schema": json.loads(schema.model_dump_json(exclude={"samples"})),
        "batching": {"enabled": options.batching, "max_batch_size": options.max_batch_size,
                     "max_wait_ms": options.max_wait_ms},
        "limits": {"max_body_bytes": options.max_body_bytes
                   or body_limit(schema, options.max_batch_rows),
                   "max_batch_rows": options.max_batch_rows,
                   "max_concurrency": options.max_concurrency},
        "auth": auth_config(options),
        "shutdown": {"ready_pause_s": options.ready_pause_s,
                     "drain_timeout_s": options.drain_timeout_s},
        "threads": options.threads,
        "reference": options.reference.to_json_dict() if options.reference else None,
    }


def auth_config(options: ServingOptions) -> dict[str, Any]:
    """serving.json's auth object; protect_metrics only when set, so older servers read it."""
    auth: dict[str, Any] = {"api_key_env": options.api_key_env}
    if options.protect_metrics:
        auth["protect_metrics"] = True
    return auth


def external_data_files(artifact: ModelArtifact) -> list[str]:
    """The files an ONNX model keeps tensors in, relative to it (each checked again to be inside
    the model's folder: the file may have changed since it was loaded)."""
    try:
        model = onnx.load(str(artifact.model_file), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends: the file changed on disk
        raise BundleError(f"'{artifact.model_file.name}' can no longer be read as ONNX.",
                          "It changed since it was opened: open it again.",
                          detail=repr(exc)) from exc
    folder = artifact.model_file.parent.resolve()
    locations = set()
    for tensor in onnx_format._tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = {entry.key: entry.value for entry in tensor.external_data}.get("location", "")
        target = (folder / location).resolve()
        if not location or Path(location).is_absolute() or not target.is_relative_to(folder) \
                or not target.is_file():
            raise BundleError(
                f"Tensor '{tensor.name}' of '{artifact.model_file.name}' reads its data from "
                f"'{location}', which is not a file in the model's folder.",
                "Keep external data files next to the .onnx file, then open the model again.")
        locations.add(target.relative_to(folder).as_posix())
    return sorted(locations)


def _check_data_files_fit_image(locations: list[str]) -> None:
    for location in locations:
        if not DATA_FILE_PATTERN.fullmatch(location) or location.split("/")[0] in BUNDLE_ENTRIES:
            raise BundleError(
                f"The model's external data file '{location}' cannot go into an image: its name "
                "must be letters, digits, '.', '_', '-' and '+' (in folders separated by '/'), "
                f"and not one of the build context's own ({', '.join(sorted(BUNDLE_ENTRIES))}).",
                "Save the model again with another location, e.g. onnx.save_model(model, path, "
                "save_as_external_data=True, location='weights.bin').")


def _reference_profile(artifact: ModelArtifact, data: Path | None) -> ReferenceProfile | None:
    frame = read_table(data, artifact.schema.features) if data is not None else None
    return model_profile(artifact, frame)


def pinned_requirements(extra: list[str] | None = None) -> list[str]:
    """The server's packages at the versions installed here (unpinned when not installed)."""
    pins = []
    for package in SERVER_PACKAGES + list(extra or []):
        try:
            pins.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            pins.append(package)
    return pins


def fill_wheelhouse(requirements: list[str], image: ImageOptions, *,
                    progress: Progress | None = None) -> Path:
    """Download wheels for the image's platform once; later builds reuse the cache. Hands out
    pip's output line by line (str) through `progress.partial`."""
    progress = progress or quiet()
    if image.wheelhouse is not None:
        return image.wheelhouse
    platforms = manylinux_platforms(image.glibc)
    key = hashlib.sha256(json.dumps([sorted(requirements), platforms,
                                     image.python_version]).encode()).hexdigest()[:16]
    folder = (image.wheelhouse_cache or cache_root() / "wheelhouse") / key
    if (folder / "complete").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    progress.update(None, "Downloading the server's wheels for the image (cached afterwards)")
    command = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
               "--only-binary=:all:", *(f"--platform={p}" for p in platforms),
               "--python-version", image.python_version, "--implementation", "cp",
               "-d", str(folder), *requirements]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line.rstrip())
        progress.partial(line.rstrip())
        if progress.cancelled:
            process.kill()
    if process.wait() != 0:
        progress.check()
        raise BundleError(
            "The server's packages could not be downloaded for the image.",
            "Check the connection to the package index, or point the studio at a folder of "
            "wheels for the image's platform (the wheelhouse setting, --wheelhouse).",
            detail="\n".join(output[-30:]))
    (folder / "complete").write_text("\n".join(requirements) + "\n")
    return folder


def _copy_server(destination: Path) -> None:
    if not SERVER_SOURCE.is_dir():
        raise BundleError("The serving app is missing from this installation of the studio.",
                          "Reinstall Slipway Studio.")
    shutil.copytree(SERVER_SOURCE, destination / "slipway_server",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def write_bundle(artifact: ModelArtifact, destination: Path, *,
                 serving: ServingOptions | None = None, image: ImageOptions | None = None,
                 with_wheels: bool = True, progress: Progress | None = None) -> Bundle:
    """Write the build context for an ONNX artifact. Without wheels it serves the process runtime.
    Hands out the wheel download's log lines (str) through `progress.partial`."""
    progress = progress or quiet()
    serving = serving or ServingOptions()
    image = image or ImageOptions()
    if artifact.schema.metadata.onnx is None:
        raise BundleError(f"'{artifact.path.name}' is not an ONNX model.",
                          "Convert it first (Optimize page, or slipway convert); Slipway serves "
                          "ONNX with ONNX Runtime, never pickles.")
    check_serving_options(serving)
    data_files = external_data_files(artifact)
    if with_wheels:
        _check_data_files_fit_image(data_files)
    destination.mkdir(parents=True, exist_ok=True)
    progress.update(0.05, "Writing the build context")
    if serving.reference is None:
        serving = replace(serving, reference=_reference_profile(artifact, serving.reference_data))
    config = serving_config(artifact, serving)
    shutil.copyfile(artifact.model_file, destination / "model.onnx")
    for location in data_files:
        (destination / location).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(artifact.model_file.parent / location, destination / location)
    (destination / "serving.json").write_text(json.dumps(config, indent=2))
    server = destination / "server"
    shutil.rmtree(server, ignore_errors=True)
    server.mkdir()
    _copy_server(server)
    if with_wheels:
        requirements = pinned_requirements(image.extra_packages)
        wheelhouse = fill_wheelhouse(requirements, image, progress=progress)
        wheels = destination / "wheels"
        shutil.rmtree(wheels, ignore_errors=True)
        wheels.mkdir()
        for wheel in wheelhouse.glob("*.whl"):
            try:
                (wheels / wheel.name).hardlink_to(wheel)
            except OSError:
                shutil.copyfile(wheel, wheels / wheel.name)
        (wheels / "requirements.txt").write_text("\n".join(requirements) + "\n")
        template = Template((TEMPLATES / "Dockerfile.tmpl").read_text())
        (destination / "Dockerfile").write_text(template.substitute(
            base_image=image.base_image, model_name=config["name"],
            model_version=config["version"], model_sha256=config["sha256"], port=SERVER_PORT,
            model_data="\n".join(f"COPY {f} /app/{f}" for f in data_files)))
        (destination / ".dockerignore").write_text(
            (TEMPLATES / "dockerignore").read_text() + "".join(f"!{f}\n" for f in data_files))
    progress.update(0.2, "Build context ready")
    return Bundle(path=destination, model_name=config["name"], version=config["version"],
                  sha256=config["sha256"], with_wheels=with_wheels, data_files=tuple(data_files))
