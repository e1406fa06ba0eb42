"""From a loaded model to a running, ready server: the Serve stage as one function.

    check options -> choose_runtime -> ensure_onnx (convert, parity gate) -> write_bundle
        -> build (Docker) -> run

`deploy` is what `slipway serve` and the Serve page's Build & Run both call; `build_image` is its
first half, which `slipway build` calls. Options that cannot work (a bad version, an API key whose
variable is not set) are refused before anything is converted or built. A model that failed its
parity check is not served unless the caller says so. Both hand out the log of every step (str
lines: the runtime chosen and why, the parity verdict, the wheel download, the image build)
through `progress.partial`.

Each model version has one work folder (core/serve/places.py): a conversion the Optimize stage
already verified there is served as it is, and the bundle is rewritten there rather than in a new
folder per run. A model is served on the port it had last time when that port is free.

The key reaches the server through its environment at run time (the process's, the container's),
never through the build context or the image. A deployment's stop waits for the server's shutdown
pause and drain (`ServingOptions.stop_timeout_s`) before it kills it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import onnx
from google.protobuf.message import DecodeError

from studio.core.errors import StudioError
from studio.core.model.artifact import ModelArtifact, load
from studio.core.optimize import convert as convert_module
from studio.core.serve.bundle import (
    Bundle,
    ImageOptions,
    ServingOptions,
    check_serving_options,
    write_bundle,
)
from studio.core.serve.places import remember_port, remembered_port, version_work_dir
from studio.core.serve.runtimes.base import (
    DEFAULT_READY_TIMEOUT_S,
    Deployment,
    DeploymentError,
    free_port,
    port_in_use,
)
from studio.core.serve.runtimes.docker import DockerRuntime, engine_status
from studio.core.serve.runtimes.process import ProcessRuntime
from studio.core.tasks import Progress, quiet

RUNTIMES = ("auto", "docker", "process")


@dataclass
class DeployOptions:
    runtime: str = "auto"
    tag: str | None = None
    port: int | None = None
    cpus: float | None = None
    memory: str | None = None
    ready_timeout: float = DEFAULT_READY_TIMEOUT_S
    serve_failed_parity: bool = False
    serving: ServingOptions = field(default_factory=ServingOptions)
    image: ImageOptions = field(default_factory=ImageOptions)


@dataclass(frozen=True)
class RuntimeChoice:
    name: str
    reason: str


def choose_runtime(preference: str = "auto") -> RuntimeChoice:
    """Docker when an engine answers (or when asked for), else the process runtime; with why."""
    if preference == "process":
        return RuntimeChoice("process", "asked for instead of Docker: the server runs as a local "
                                        "process, no engine needed")
    status = engine_status()
    if preference == "docker":
        if not status.available:
            raise DeploymentError(f"The Docker runtime was chosen, but {status.reason}.",
                                  "Start the engine, or choose the process runtime.")
        return RuntimeChoice("docker", f"asked for; {status.reason}, so the model runs in a "
                                       "container")
    if status.available:
        return RuntimeChoice("docker", f"{status.reason}, so the model runs in a container")
    return RuntimeChoice("process", f"{status.reason}, so the model runs as a local process")


def server_environment(serving: ServingOptions) -> dict[str, str]:
    """What the server's environment needs from the studio's: the API key's variable, when the
    options ask for a key. An unset or empty one would serve without a key, so it is refused."""
    if not serving.api_key_env:
        return {}
    key = os.environ.get(serving.api_key_env)
    if not key:
        raise DeploymentError(
            f"The server should require the API key in ${serving.api_key_env}, but "
            f"{serving.api_key_env} is not set{'' if key is None else ' (it is empty)'}.",
            f"Set {serving.api_key_env} to the key before starting the studio or the command "
            f"(export {serving.api_key_env}=...), or serve without an API key.")
    return {serving.api_key_env: key}


def verified_conversion(artifact: ModelArtifact, work_dir: Path) -> tuple[ModelArtifact, str] | None:
    """The ONNX conversion of exactly this model file already in its work folder (the Optimize
    stage writes it there) that passed its parity check, with its parity summary; None when there
    is none."""
    path = conversion_path(artifact, work_dir)
    if not path.is_file():
        return None
    try:
        properties = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
        parity = json.loads(properties.get(convert_module.PARITY_PROPERTY, "{}"))
        source = f"{artifact.format}:{artifact.schema.metadata.sha256}"
        if properties.get(convert_module.SOURCE_PROPERTY) != source or parity.get("passed") is not True:
            return None
        return load(path), str(parity.get("summary", "pass"))
    except (OSError, ValueError, DecodeError, StudioError):
        return None  # damaged or partly written: convert again


def conversion_path(artifact: ModelArtifact, work_dir: Path) -> Path:
    """Where the ONNX conversion of `artifact` is written in its work folder."""
    return work_dir / f"{artifact.name}.onnx"


def ensure_onnx(artifact: ModelArtifact, work_dir: Path, *, serve_failed_parity: bool = False,
                progress: Progress | None = None) -> ModelArtifact:
    """The ONNX model to serve: the artifact itself, the verified conversion already made, or a
    new one."""
    progress = progress or quiet()
    if artifact.schema.metadata.onnx is not None:
        return artifact
    earlier = verified_conversion(artifact, work_dir)
    if earlier is not None:
        converted, summary = earlier
        progress.partial(f"Using the ONNX conversion already made and verified: "
                         f"{converted.model_file} (parity {summary})")
        return converted
    conversion = convert_module.convert(artifact, conversion_path(artifact, work_dir),
                                        progress=progress)
    progress.partial(conversion.report.parity.summary())
    if not conversion.passed and not serve_failed_parity:
        raise DeploymentError(
            f"The ONNX conversion of '{artifact.name}' failed its parity check: "
            f"{conversion.report.parity.summary()}",
            "Look at the differences on the Optimize page; serving it anyway needs an explicit "
            "choice (--serve-failed-parity).")
    return conversion.artifact


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    image_id: str
    bundle: Bundle
    runtime: DockerRuntime


def _bundle(artifact: ModelArtifact, options: DeployOptions, *, with_wheels: bool,
            progress: Progress, folder: str = "bundle") -> Bundle:
    work_dir = version_work_dir(artifact)
    model = ensure_onnx(artifact, work_dir, serve_failed_parity=options.serve_failed_parity,
                        progress=progress)
    bundle = write_bundle(model, work_dir / folder, serving=options.serving, image=options.image,
                          with_wheels=with_wheels, progress=progress)
    progress.partial(f"Build context: {bundle.path}")
    return bundle


def build_image(artifact: ModelArtifact, options: DeployOptions | None = None, *,
                progress: Progress | None = None) -> BuiltImage:
    """Convert if needed, write the build context and build the serving image with Docker."""
    progress = progress or quiet()
    options = options or DeployOptions()
    check_serving_options(options.serving)
    runtime = DockerRuntime()  # no engine: say so before converting anything
    bundle = _bundle(artifact, options, with_wheels=True, progress=progress)
    tag = options.tag or bundle.default_tag
    image_id = runtime.build(bundle, tag, base_image=options.image.base_image, progress=progress)
    return BuiltImage(tag, image_id, bundle, runtime)


def deploy(artifact: ModelArtifact, options: DeployOptions | None = None, *,
           progress: Progress | None = None) -> Deployment:
    """Bundle, build when in Docker, run, and wait until the server is ready."""
    progress = progress or quiet()
    options = options or DeployOptions()
    check_serving_options(options.serving)
    environment = server_environment(options.serving)
    choice = choose_runtime(options.runtime)
    progress.partial(f"Runtime: {choice.name} ({choice.reason})")
    remembered = None if options.port else remembered_port(artifact)
    try:
        deployment = _run(choice, artifact, options, options.port or remembered or free_port(),
                          environment, progress)
    except DeploymentError:
        if remembered is None or port_in_use(remembered) is None:
            raise
        # Another server took the port between the check and the start: not worth failing for.
        progress.partial(f"Port {remembered}, where {artifact.name} was served last time, was "
                         "taken meanwhile: serving on another one")
        deployment = _run(choice, artifact, options, free_port(), environment, progress)
    deployment.stop_timeout = options.serving.stop_timeout_s
    remember_port(artifact, urlsplit(deployment.url).port)
    return deployment


def _run(choice: RuntimeChoice, artifact: ModelArtifact, options: DeployOptions, port: int,
         environment: dict[str, str], progress: Progress) -> Deployment:
    if choice.name == "docker":
        built = build_image(artifact, options, progress=progress)
        deployment = built.runtime.run(built.tag, built.bundle.model_name, port,
                                       cpus=options.cpus, memory=options.memory, env=environment,
                                       ready_timeout=options.ready_timeout, progress=progress)
        deployment.bundle_path = built.bundle.path
        return deployment
    # The server runs from its bundle: one folder per port, so two servers never share one.
    bundle = _bundle(artifact, options, with_wheels=False, progress=progress,
                     folder=f"bundle-{port}")
    return ProcessRuntime().run(bundle, port, env=environment,
                                ready_timeout=options.ready_timeout, progress=progress)
