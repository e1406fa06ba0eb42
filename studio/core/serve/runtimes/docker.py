"""The Docker runtime, through the docker SDK: engine status, image builds, containers."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from studio.core.serve.bundle import SERVER_PORT, Bundle
from studio.core.serve.runtimes.base import (
    DEFAULT_READY_TIMEOUT_S,
    Deployment,
    DeploymentError,
    ResourceUsage,
    choose_port,
)
from studio.core.tasks import Progress, quiet
from studio.core.workspace import data_root, installation_id

ENGINE_PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class EngineStatus:
    available: bool
    version: str | None
    reason: str
    """One sentence: which engine answered, or why none did."""


def engine_status(timeout: float = ENGINE_PROBE_TIMEOUT_S) -> EngineStatus:
    """Ask the engine named by DOCKER_HOST (or the default socket) for its version."""
    import docker
    from docker.errors import DockerException

    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=timeout)
        try:
            version = client.version().get("Version", "unknown")
        finally:
            client.close()
    except DockerException as exc:
        text = str(exc)
        if "FileNotFoundError" in text or "No such file" in text:
            reason = f"no Docker engine is running ({where} does not exist)"
        elif "Permission denied" in text or "PermissionError" in text:
            reason = f"this user may not use the Docker engine at {where} (add it to the docker group)"
        elif "Connection refused" in text or "ConnectionRefused" in text:
            reason = f"the Docker engine at {where} refuses connections (is dockerd running?)"
        else:
            reason = f"the Docker engine at {where} did not answer: {text.splitlines()[0][:160]}"
        return EngineStatus(available=False, version=None, reason=reason)
    return EngineStatus(available=True, version=version, reason=f"Docker {version} answers at {where}")


# --- building and running images ---------------------------------------------------------------

MANAGED_LABEL = "io.slipway.managed"
MODEL_LABEL = "io.slipway.model.name"
INSTALLATION_LABEL = "io.slipway.installation"
"""On the containers this installation starts: images carry MANAGED_LABEL too, so a container a
person runs from one by hand has it, and must not be listed or cleaned up as the studio's."""
BUILD_TIMEOUT_S = 1800
# The server writes nothing but temporary files (Python's tempfile, in /tmp), so the root
# filesystem is read-only and /tmp a small tmpfs. No capability is needed to listen on 8000 as
# user 10001, and the process count is bounded (the engine counts threads as processes).
HARDENING = {
    "read_only": True,
    "tmpfs": {"/tmp": "rw,nosuid,nodev,noexec,size=64m,mode=1777"},
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges:true"],
    "pids_limit": 256,
}


def _installation_id() -> str:
    try:
        return installation_id()
    except OSError as exc:
        raise DeploymentError(
            f"The studio cannot keep its installation id in {data_root()}: {exc.strerror or exc}.",
            "It marks the containers this installation starts: make that folder writable, or set "
            "XDG_DATA_HOME to one that is.", detail=repr(exc)) from exc


def _client(timeout: float = 60.0):
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
        return client
    except DockerException as exc:
        status = engine_status()
        raise DeploymentError(
            f"No Docker engine to build or run with: {status.reason}.",
            "Start the engine (systemctl start docker, or dockerd as root), or choose the process "
            "runtime, which needs no engine.", detail=repr(exc)) from exc


def _base_image_hint(error: str, base_image: str | None) -> str:
    lowered = error.lower()
    if any(s in lowered for s in ("pull access denied", "no such host", "manifest unknown",
                                  "not found: manifest", "registry", "dial tcp")):
        return (f"The base image {base_image or ''} is not on this machine and no registry answers: "
                "set the base image to one listed by `docker images` (scripts/base-image.sh makes "
                "one from Debian's packages).")
    return "The failing step's output is above and in the log; fix it and build again."


class DockerRuntime:
    name = "docker"

    def __init__(self, client=None):
        self.client = client or _client()

    def build(self, bundle: Bundle, tag: str | None = None, *, base_image: str | None = None,
              progress: Progress | None = None) -> str:
        """Build the bundle's image and return its id. Hands out the build log line by line (str)
        through `progress.partial`."""
        from docker.errors import APIError

        progress = progress or quiet()
        tag = tag or bundle.default_tag
        progress.update(None, f"Building {tag}")
        step, tail, image_id = "", [], None
        try:
            stream = self.client.api.build(path=str(bundle.path), tag=tag, rm=True, forcerm=True,
                                           decode=True, pull=False, timeout=BUILD_TIMEOUT_S,
                                           labels={MANAGED_LABEL: "true",
                                                   MODEL_LABEL: bundle.model_name})
            for chunk in stream:
                progress.check()
                if "error" in chunk:
                    error = chunk["error"].strip()
                    raise DeploymentError(
                        f"The image build failed{f' at {step}' if step else ''}: {error}",
                        _base_image_hint(error, base_image), detail="\n".join(tail[-40:]))
                text = chunk.get("stream") or chunk.get("status") or ""
                for line in text.splitlines():
                    if not line.strip():
                        continue
                    if line.startswith("Step "):
                        step = line.split(" : ", 1)[0].lower()
                        progress.update(None, line)
                    tail.append(line)
                    progress.partial(line)
                image_id = (chunk.get("aux") or {}).get("ID", image_id)
        except APIError as exc:
            raise DeploymentError(f"The Docker engine refused the build: {exc.explanation or exc}",
                                  _base_image_hint(str(exc), base_image), detail=repr(exc)) from exc
        return image_id or self.client.images.get(tag).id

    def run(self, tag: str, name: str, port: int | None = None, *, cpus: float | None = None,
            memory: str | None = None, env: dict[str, str] | None = None,
            ready_timeout: float = DEFAULT_READY_TIMEOUT_S,
            progress: Progress | None = None) -> DockerDeployment:
        """Run the image, hardened, with its port published on 127.0.0.1 and wait until it is
        ready. `env` reaches the container only: an API key never enters the image."""
        from docker.errors import APIError, ImageNotFound

        progress = progress or quiet()
        port = choose_port(port)
        progress.update(None, f"Starting {tag} on 127.0.0.1:{port}")
        try:
            container = self.client.containers.run(
                tag, detach=True, ports={f"{SERVER_PORT}/tcp": ("127.0.0.1", port)},
                labels={MANAGED_LABEL: "true", MODEL_LABEL: name,
                        INSTALLATION_LABEL: _installation_id()},
                name=f"slipway-{name.lower()}-{port}",
                nano_cpus=int(cpus * 1e9) if cpus else None, mem_limit=memory or None,
                environment=env or {}, **HARDENING)
        except ImageNotFound as exc:
            raise DeploymentError(f"There is no image {tag} on this Docker engine.",
                                  "Build it first (Build & Run, or slipway build).") from exc
        except APIError as exc:
            text = str(exc.explanation or exc)
            if "port is already allocated" in text or "address already in use" in text:
                raise DeploymentError(f"Port {port} on 127.0.0.1 is already in use.",
                                      "Choose another port, or leave it empty for a free one.",
                                      detail=text) from exc
            raise DeploymentError(f"Docker could not start {tag}: {text}",
                                  "See the Docker engine's message above.", detail=text) from exc
        deployment = DockerDeployment(name, f"http://127.0.0.1:{port}", container)
        return deployment.started(ready_timeout, progress, stop_timeout=2)

    def managed(self) -> list:
        """The containers this installation of the studio started, running or not."""
        return self.client.containers.list(all=True, filters={"label": [
            f"{MANAGED_LABEL}=true", f"{INSTALLATION_LABEL}={_installation_id()}"]})

    def cleanup(self) -> int:
        """Stop and remove every container this installation started; returns how many."""
        containers = self.managed()
        for container in containers:
            try:
                container.remove(force=True)
            except Exception:  # already gone
                pass
        return len(containers)


class DockerDeployment(Deployment):
    runtime = "docker"

    def __init__(self, name: str, url: str, container):
        super().__init__(name, url)
        self.container = container

    def exit_reason(self) -> str | None:
        from docker.errors import NotFound

        try:
            self.container.reload()
        except NotFound:
            return "disappeared (its container was removed)"
        state = self.container.attrs.get("State", {})
        if state.get("Status") in ("exited", "dead"):
            if state.get("OOMKilled"):
                return "ran out of memory (raise the memory limit)"
            return f"exited with status {state.get('ExitCode')}"
        return None

    def usage(self) -> ResourceUsage | None:
        """The container's CPU time and memory from the engine's stats (one sample, no wait)."""
        try:
            stats = self.container.stats(stream=False, one_shot=True)
            cpu_ns = stats["cpu_stats"]["cpu_usage"]["total_usage"]
            memory = stats["memory_stats"]
            # The engine's own "used" figure leaves out the reclaimable page cache.
            used = memory["usage"] - memory.get("stats", {}).get("inactive_file", 0)
        except Exception:  # the container stopped, or the engine went away: no sample this time
            return None
        return ResourceUsage(cpu_ns / 1e9, float(used), float(memory.get("limit") or 0) or None)

    def logs(self, tail: int = 200) -> str:
        try:
            return self.container.logs(tail=tail).decode(errors="replace")
        except Exception:  # the container may be gone; its log with it
            return ""

    def follow_logs(self, progress: Progress | None = None) -> Iterator[str]:
        progress = progress or quiet()
        stream = self.container.logs(stream=True, follow=True)
        done = threading.Event()

        def close_on_cancel() -> None:
            while not done.wait(0.2):
                if progress.cancelled:
                    stream.close()
                    return

        threading.Thread(target=close_on_cancel, daemon=True).start()
        buffer = b""
        try:
            for chunk in stream:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    yield line.decode(errors="replace")
        except Exception:  # the stream closes with the container or on cancel
            pass
        finally:
            done.set()

    def _stop(self, timeout: float) -> None:
        try:
            self.container.stop(timeout=math.ceil(timeout))
            self.container.remove(force=True)
        except Exception:  # already stopped or removed
            pass
