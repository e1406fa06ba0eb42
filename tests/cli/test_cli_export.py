"""`slipway export` as a real process: manifests checked then written, options refused by flag,
and `--check` on a folder a person edited."""

import json
import os
import subprocess
import sys

import yaml

from studio.ui.app import DEMO_MODEL

IMAGE = "registry.example.com/ml/wine:1"


def slipway(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "studio.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


def test_export_writes_checked_manifests_and_says_what_ran(tmp_path):
    out = tmp_path / "out"
    result = slipway("export", DEMO_MODEL, "--image", IMAGE, "--out", out, "--replicas", "3",
                     "--cpu", "250m", "--memory", "256Mi", "--memory-limit", "256Mi",
                     "--kserve", "--servicemonitor", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] and report["findings"] == []
    assert {t["tool"] for t in report["tools"]} == {"kubernetes-validate", "kustomize",
                                                     "compose", "checkov"}
    assert (out / "compose.yaml").exists() and (out / "kserve/inferenceservice.yaml").exists()
    deployment = yaml.safe_load((out / "kubernetes/base/deployment.yaml").read_text())
    assert deployment["spec"]["replicas"] == 3
    assert deployment["metadata"]["name"] == "wine-classifier"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == IMAGE
    assert container["resources"]["requests"]["cpu"] == "250m"
    assert len(report["written"]) == len(report["documents"])


def test_autoscaling_and_a_canary_on_the_command_line(tmp_path):
    scaled = slipway("export", DEMO_MODEL, "--image", IMAGE, "--out", tmp_path / "scaled",
                     "--min-replicas", "2", "--max-replicas", "6", "--target-cpu", "60",
                     "--k8s-version", "1.33")
    assert scaled.returncode == 0, scaled.stderr
    assert "Kubernetes 1.33" in scaled.stdout + scaled.stderr
    hpa = yaml.safe_load((tmp_path / "scaled/kubernetes/base/hpa.yaml").read_text())
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    canary = slipway("export", DEMO_MODEL, "--image", IMAGE, "--out", tmp_path / "canary",
                     "--canary", "registry.example.com/ml/wine:2", "--canary-percent", "10",
                     "--replicas", "9")
    assert canary.returncode == 0, canary.stderr
    second = yaml.safe_load((tmp_path / "canary/kubernetes/base/deployment-canary.yaml")
                            .read_text())
    assert second["spec"]["replicas"] == 1


def test_bad_options_name_their_flag_and_write_nothing(tmp_path):
    for args, flag in ((["--replicas", "0"], "--replicas"),
                       (["--memory", "1Gi", "--memory-limit", "512Mi"], "--memory-limit"),
                       (["--name", "Wine_Model"], "--name"),
                       (["--k8s-version", "1.99"], "--k8s-version"),
                       (["--env", "NOEQUALS"], "--env")):
        out = tmp_path / flag.strip("-")
        result = slipway("export", DEMO_MODEL, "--image", IMAGE, "--out", out, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith(f"slipway: error: {flag}"), result.stderr
        assert "Traceback" not in result.stderr
        assert not out.exists()
    latest = slipway("export", DEMO_MODEL, "--image", "example/wine:latest", "--out",
                     tmp_path / "latest")
    assert latest.returncode == 2 and "--image" in latest.stderr


def test_check_fails_an_edited_folder_with_a_distinct_status(tmp_path):
    out = tmp_path / "out"
    assert slipway("export", DEMO_MODEL, "--image", IMAGE, "--out", out).returncode == 0
    assert slipway("export", "--check", out).returncode == 0
    path = out / "kubernetes/base/deployment.yaml"
    deployment = yaml.safe_load(path.read_text())
    deployment["spec"]["template"]["spec"]["containers"][0].pop("livenessProbe")
    path.write_text(yaml.safe_dump(deployment))
    result = slipway("export", "--check", out)
    assert result.returncode == 5
    assert "pod-probes" in result.stderr and "deployment.yaml" in result.stderr
    assert "CKV_K8S_8" in result.stderr  # Checkov's own liveness check, named


def test_export_needs_its_inputs():
    result = slipway("export", DEMO_MODEL)
    assert result.returncode == 2
    assert "--image" in result.stderr and "--out" in result.stderr
