"""Container and cluster files, validated offline (no Docker engine or cluster here)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SERVICES = ("extractor", "search", "rerank", "gateway")


def tool(name: str) -> str:
    found = shutil.which(name, path=f"{BIN}:/usr/local/bin:/usr/bin:/bin")
    assert found, f"{name} is not installed (make install provides the Python ones)"
    return found


def run(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfiles_lint_clean_and_follow_the_rules(service: str) -> None:
    path = ROOT / f"Dockerfile.{service}"
    run(tool("hadolint"), "--config", ".hadolint.yaml", str(path))
    text = path.read_text()
    assert "ARG BASE_IMAGE" in text and "AS deps" in text  # base image argument, multi-stage
    # The dependency layer is keyed on pyproject.toml and the constraints only: no code is
    # copied before it, so a code change does not reinstall GBs of wheels.
    deps_stage = text.split("AS deps", 1)[1].split("\nFROM ", 1)[0]
    assert "pip install" in deps_stage
    copies = [line for line in deps_stage.splitlines() if line.startswith("COPY")]
    assert copies == ["COPY pyproject.toml docker/constraints.txt ./"]
    assert "USER 10001" in text and "HEALTHCHECK" in text
    assert f'"--role", "{service}"' in text
    # Nothing fetches weights: no curl/wget, no hub download.
    assert "wget " not in text and "curl " not in text and "huggingface" not in text


def test_the_bulk_dockerfile_lints_clean_and_has_what_kuberay_needs() -> None:
    text = (ROOT / "Dockerfile.bulk").read_text()
    run(tool("hadolint"), "--config", ".hadolint.yaml", "Dockerfile.bulk")
    deps_stage = text.split("AS deps", 1)[1].split("\nFROM ", 1)[0]
    copies = [line for line in deps_stage.splitlines() if line.startswith("COPY")]
    assert copies == ["COPY pyproject.toml docker/constraints.txt ./"]
    assert '".[bulk,serve]" "ray[default]"' in deps_stage  # the job server KubeRay submits to
    assert "wget" in text.split("apt-get install", 1)[1].split("\n", 1)[0]  # KubeRay's probes
    assert "USER 10001" in text and "curl " not in text and "wget http" not in text
    job = (ROOT / "deploy/k8s/bulk/rayjob.yaml").read_text()
    assert job.count("image: imsearch-bulk:latest") == 2  # head and workers


def test_the_redis_dockerfile_lints_clean() -> None:
    run(tool("hadolint"), "--config", ".hadolint.yaml", "docker/redis.Dockerfile")


def test_compose_files_match_the_compose_spec() -> None:
    run(
        tool("check-jsonschema"),
        "--builtin-schema",
        "vendor.compose-spec",
        "docker-compose.yml",
        "docker-compose.gpu.yml",
    )
    text = (ROOT / "docker-compose.yml").read_text()
    for name in ("redis", *SERVICES):
        assert f"\n  {name}:" in text


@pytest.mark.parametrize("overlay", ["cpu", "gpu"])
def test_kubernetes_overlays_build_and_validate(overlay: str, tmp_path: Path) -> None:
    rendered = run(tool("kubectl"), "kustomize", f"deploy/k8s/overlays/{overlay}").stdout
    manifest = tmp_path / f"{overlay}.yaml"
    manifest.write_text(rendered)
    run(tool("kubernetes-validate"), "--strict", "-k", "1.30.0", str(manifest))
    kinds = [
        line.split(":", 1)[1].strip() for line in rendered.splitlines() if line.startswith("kind:")
    ]
    assert kinds.count("Deployment") == 6 and kinds.count("HorizontalPodAutoscaler") == 4
    assert kinds.count("PersistentVolumeClaim") == 1  # one system of record
    assert ("nvidia.com/gpu" in rendered) == (overlay == "gpu")
    assert writers_recreated(rendered) == {"imsearch-search"}


def writers_recreated(rendered: str) -> set[str]:
    """Deployments that mount a data volume writable: each must stop its old pod before the
    new one starts (one writer per data directory), so none may roll."""
    import yaml

    writers: set[str] = set()
    for doc in yaml.safe_load_all(rendered):
        if not doc or doc["kind"] != "Deployment":
            continue
        pod = doc["spec"]["template"]["spec"]
        mounts = [m for c in pod["containers"] for m in c.get("volumeMounts", [])]
        if any(not m.get("readOnly") for m in mounts):
            name = doc["metadata"]["name"]
            assert doc["spec"].get("strategy") == {"type": "Recreate"}, name
            assert doc["spec"]["replicas"] == 1, name
            writers.add(name)
    return writers


def test_the_bulk_rayjob_builds_and_its_pods_validate(tmp_path: Path) -> None:
    """The KubeRay RayJob (a CRD kubernetes-validate has no schema for): its head and worker
    pod templates are validated as Pods; the job writes through the search primary and
    mounts no data volume writable."""
    import yaml

    rendered = run(tool("kubectl"), "kustomize", "deploy/k8s/bulk").stdout
    job = yaml.safe_load(rendered)
    assert job["kind"] == "RayJob" and "--engine ray" in job["spec"]["entrypoint"]
    cluster = job["spec"]["rayClusterSpec"]
    templates = [cluster["headGroupSpec"]["template"]] + [
        group["template"] for group in cluster["workerGroupSpecs"]
    ]
    pods = [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"t{i}"}, "spec": t["spec"]}
        for i, t in enumerate(templates)
    ]
    manifest = tmp_path / "pods.yaml"
    manifest.write_text(yaml.safe_dump_all(pods))
    run(tool("kubernetes-validate"), "--strict", "-k", "1.30.0", str(manifest))
    for pod in pods:
        volumes = pod["spec"].get("volumes", [])
        claims = [v["persistentVolumeClaim"] for v in volumes if "persistentVolumeClaim" in v]
        assert claims and all(c["claimName"] != "imsearch-search-data" for c in claims)
        assert all(c.get("readOnly") is True for c in claims)  # the source, read-only
        assert any(v.get("emptyDir", {}).get("medium") == "Memory" for v in volumes)  # /dev/shm
    assert "nvidia.com/gpu" in yaml.safe_dump(cluster["workerGroupSpecs"])
