"""A server of the process runtime lives exactly as long as the studio: not shorter when the thread
that started it ends (the app deploys from pool threads, which end when idle), not longer when the
studio dies, however it dies."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import onnx
import pytest
from child_processes import (
    StandInStudio,
    kill_if_alive,
    wait_until_gone,
    wait_until_thread_gone,
)

from studio.core.model.artifact import load
from studio.core.serve.client import ModelClient
from studio.core.serve.deploy import DeployOptions, deploy
from studio.core.serve.runtimes.base import Deployment

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")

SQUEEZENET = Path(onnx.__file__).parent / "backend/test/data/light/light_squeezenet.onnx"
STILL_ALIVE_AFTER_S = 2.0
"""A child bound to the ended thread is killed the moment the thread ends; give it this long."""


@pytest.fixture(scope="module")
def squeezenet():
    return load(SQUEEZENET)


def assert_still_serving(deployment: Deployment) -> None:
    with pytest.raises(subprocess.TimeoutExpired):
        deployment.process.wait(timeout=STILL_ALIVE_AFTER_S)
    with ModelClient(deployment.url) as client:
        assert client.ready(), deployment.logs()


def test_a_server_deployed_from_a_thread_that_ends_keeps_serving(squeezenet):
    deployed: dict = {}

    def deploy_and_end():
        deployed["deployment"] = deploy(squeezenet, DeployOptions(runtime="process"))

    worker = threading.Thread(target=deploy_and_end)
    worker.start()
    worker.join(180)
    deployment = deployed["deployment"]
    try:
        wait_until_thread_gone(worker.native_id)
        assert_still_serving(deployment)
    finally:
        deployment.stop()


def test_a_server_deployed_from_a_pool_thread_that_expires_keeps_serving(squeezenet):
    """The app's case: a QThreadPool worker deploys, goes idle, and expires."""
    QtCore = pytest.importorskip("PySide6.QtCore")
    pool = QtCore.QThreadPool()
    pool.setExpiryTimeout(50)  # ms; the app's pool keeps Qt's default of 30 s
    deployed: dict = {}

    def deploy_on_the_pool():
        deployed["thread"] = threading.get_native_id()
        deployed["deployment"] = deploy(squeezenet, DeployOptions(runtime="process"))

    pool.start(deploy_on_the_pool)
    assert pool.waitForDone(180_000)
    deployment = deployed["deployment"]
    try:
        wait_until_thread_gone(deployed["thread"])
        assert_still_serving(deployment)
    finally:
        deployment.stop()


DEPLOY_AND_WAIT = """
import json, sys, time
from studio.core.model.artifact import load
from studio.core.serve.deploy import DeployOptions, deploy

deployment = deploy(load(sys.argv[1]), DeployOptions(runtime="process"))
print(json.dumps({"pid": deployment.pid, "url": deployment.url}), flush=True)
time.sleep(600)
"""


def test_a_server_dies_with_a_studio_killed_with_sigkill():
    studio = StandInStudio(DEPLOY_AND_WAIT, str(SQUEEZENET))
    server: dict = {}
    try:
        server = studio.report()
        with ModelClient(server["url"]) as client:
            assert client.ready()
        studio.kill()
        assert wait_until_gone(server["pid"]), "the server outlived the studio"
        with ModelClient(server["url"]) as client:
            assert not client.ready()
    finally:
        studio.close()
        if server:
            kill_if_alive(server["pid"])
