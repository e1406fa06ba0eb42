import os
import pickle
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import joblib
import pytest
from PySide6.QtCore import QSettings
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from studio.ui.app import DEMO_MODEL, create_window
from studio.ui.theme import apply_theme


class Hang:
    """Unpickling this sleeps: a stand-in for a file that never finishes loading."""

    def __reduce__(self):
        return (time.sleep, (60,))


@pytest.fixture
def window(qtbot, qapp, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    apply_theme(qapp)
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    win = create_window(settings)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()


@pytest.fixture(scope="session")
def demo_model():
    assert DEMO_MODEL.exists(), "resources/demo/wine_classifier.onnx is missing"
    return DEMO_MODEL


@pytest.fixture(scope="module")
def demo_server(demo_model):
    """The demo model served as a local process (one per test module)."""
    from studio.core.model.artifact import load
    from studio.core.serve.deploy import DeployOptions, deploy

    deployment = deploy(load(demo_model), DeployOptions(runtime="process"))
    yield deployment
    deployment.stop()


@pytest.fixture(scope="session")
def iris_joblib(tmp_path_factory):
    X, y = load_iris(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    path = tmp_path_factory.mktemp("ui-models") / "iris_pipeline.joblib"
    joblib.dump(model, path)
    return path


@pytest.fixture(scope="session")
def hanging_pickle(tmp_path_factory):
    path = tmp_path_factory.mktemp("ui-models") / "hangs.pkl"
    path.write_bytes(pickle.dumps(Hang()))
    return path


@pytest.fixture
def random_onnx(tmp_path):
    path = tmp_path / "noise.onnx"
    path.write_bytes(os.urandom(4096))
    return path
