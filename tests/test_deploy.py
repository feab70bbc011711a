"""The deployment files (issue 15), checked without building or starting them (no
container runtime nor base images on the development machine; docs/deploy.md says so):
the compose file's services, health checks, volumes and order; the Dockerfile's stages,
user, health check and volumes; the site files the containers run with; the Orthanc
routing and the provisioned Grafana dashboard against their documented originals."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ecg_dicom.config import load_settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_runs_orthanc_redis_the_listener_two_workers_prometheus_and_grafana(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert set(services) == {"orthanc", "redis", "listener", "worker-1", "worker-2",
                             "prometheus", "grafana"}
    for name, service in services.items():  # every service says whether it is healthy
        check = service["healthcheck"]["test"]
        assert check[0] in ("CMD", "CMD-SHELL"), name
    assert "/healthz" in " ".join(services["listener"]["healthcheck"]["test"])
    listener = services["listener"]
    assert listener["command"][-1].endswith("exec ecg-dicom serve")
    assert "/run/secrets/ecg_dicom_token" in listener["command"][-1]  # the token: a file
    assert listener["secrets"] == services["prometheus"]["secrets"] == ["ecg_dicom_token"]
    assert compose["secrets"]["ecg_dicom_token"]["file"] == "./deploy/secrets/ecg_dicom_token"
    assert (DEPLOY / "secrets" / ".gitignore").read_text().splitlines()[1] == "*"
    for name in ("listener", "worker-1", "worker-2"):
        assert services[name]["image"] == "ecg-dicom:latest"
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
        assert "redis:6379" in services[name]["environment"]["ECG_DICOM_QUEUE__REDIS_URL"]
    assert services["prometheus"]["depends_on"]["listener"]["condition"] == "service_healthy"


def named_volumes(service: dict[str, Any]) -> dict[str, str]:
    """Named volume -> where it is mounted (bind mounts of ./ files left out)."""
    found = {}
    for entry in service.get("volumes", []):
        source, target = entry.split(":")[:2]
        if not source.startswith("."):
            found[source] = target
    return found


def test_each_worker_has_its_own_folders_and_none_of_the_listeners(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    listener = named_volumes(services["listener"])
    assert set(listener.values()) == {"/var/lib/ecg-dicom/spool", "/var/lib/ecg-dicom/outputs",
                                      "/var/lib/ecg-dicom/audit"}
    seen = set(listener)
    for name in ("worker-1", "worker-2"):
        assert services[name]["command"][:2] == ["ecg-dicom", "worker"]
        mine = named_volumes(services[name])
        assert "/var/lib/ecg-dicom/spool" in mine.values()
        assert not seen & set(mine), f"{name} shares {seen & set(mine)}"
        seen |= set(mine)
    declared = set(compose["volumes"])
    used = {v for s in services.values() for v in named_volumes(s)}
    assert used == declared
    for service in services.values():  # every file a service mounts is in the repository
        for entry in service.get("volumes", []):
            if entry.startswith("./"):
                assert (ROOT / entry.split(":")[0]).exists(), entry


def test_the_site_files_are_valid_and_the_listener_hands_the_work_to_remote_workers(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in list(os.environ):
        if key.startswith("ECG_DICOM_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("ECG_DICOM_HTTP__TOKEN", "x" * 32)
    listener = load_settings(DEPLOY / "site.yaml")
    worker = load_settings(DEPLOY / "worker.yaml")
    assert listener.queue.remote and listener.queue.workers == 0
    assert worker.queue.remote and worker.queue.backend == "redis"
    # Orthanc routes ECGs to the listener, and the listener sends results to Orthanc.
    orthanc = json.loads((DEPLOY / "orthanc" / "orthanc.json").read_text())
    ae, host, port = orthanc["DicomModalities"]["ecgdicom"]
    assert (ae, host, port) == (listener.dicom.ae_title, "listener", listener.dicom.port)
    back = listener.delivery.destinations["ORTHANC"]
    assert (back.ae_title, back.host, back.port) == (orthanc["DicomAet"], "orthanc",
                                                     orthanc["DicomPort"])
    assert [c.ae_title for c in listener.dicom.allowed_callers] == [orthanc["DicomAet"]]
    # The routing script is the documented, tested one, and names the listener's AE title
    # and the outputs' marks (never routed back: no loop).
    mounts = dict(v.split(":")[:2] for v in compose["services"]["orthanc"]["volumes"])
    assert mounts["./docs/orthanc-routing.lua"] in orthanc["LuaScripts"]
    lua = (ROOT / "docs" / "orthanc-routing.lua").read_text()
    assert f"local ECG_DICOM_AET = '{listener.dicom.ae_title}'" in lua
    assert f"local ECG_DICOM_MANUFACTURER = '{listener.output.manufacturer}'" in lua
    assert "local ECG_DICOM_MODALITY = 'ecgdicom'" in lua


def stages(dockerfile: str) -> list[list[str]]:
    """The Dockerfile's instructions (continuations joined), split by FROM."""
    text = re.sub(r"\\\n", " ", dockerfile)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    found: list[list[str]] = []
    for line in lines:
        if line.startswith("FROM "):
            found.append([])
        if found:
            found[-1].append(line)
    return found


def test_the_image_is_built_in_two_stages_and_runs_without_cuda_as_a_user() -> None:
    build, runtime = stages((ROOT / "Dockerfile").read_text())
    assert build[0].endswith(" AS build") and runtime[0].endswith(" AS runtime")
    build_text = " ".join(build)
    assert "--index-url \"${TORCH_INDEX}\" torch==" in build_text
    assert "whl/cpu" in (ROOT / "Dockerfile").read_text()
    assert "ecg-dicom export --format openvino-int8" in build_text
    pyproject = (ROOT / "pyproject.toml").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for pin in re.findall(r"(torch(?:vision)?==[0-9.]+)", build_text + makefile):
        assert f'"{pin}"' in pyproject, pin  # the CPU wheels meet the project's pins
    runtime_text = " ".join(runtime)
    assert "pip install" not in runtime_text and "cuda" not in runtime_text.lower()
    assert "COPY --from=build /opt/venv /opt/venv" in runtime
    users = [line.split()[1] for line in runtime if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    (health,) = [line for line in runtime if line.startswith("HEALTHCHECK ")]
    assert "/healthz" in health
    (volume,) = [line for line in runtime if line.startswith("VOLUME ")]
    assert "/var/lib/ecg-dicom/spool" in volume and "/var/lib/ecg-dicom/outputs" in volume
    assert runtime[-1] == 'CMD ["ecg-dicom", "serve"]'
    # The build context is what the image is made of, not the checkout (.venv is GBs).
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignored and "!.venv" not in ignored and "!src/" in ignored
    for line in build:
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert f"!{source.rstrip('/')}/" in ignored or f"!{source}" in ignored, source


def test_grafana_is_provisioned_with_the_documented_dashboard() -> None:
    documented = (ROOT / "docs" / "grafana-dashboard.json").read_text()
    expected = json.loads(documented.replace("${DS_PROMETHEUS}", "prometheus"))
    expected.pop("__inputs", None)
    expected.pop("__requires", None)
    provisioned = json.loads((DEPLOY / "grafana" / "dashboards" / "ecg-dicom.json").read_text())
    assert provisioned == expected, "regenerate deploy/grafana/dashboards/ecg-dicom.json"
    sources = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources"
                              / "prometheus.yml").read_text())["datasources"]
    assert [(s["uid"], s["url"]) for s in sources] == [("prometheus", "http://prometheus:9090")]
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = scrape["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["listener:8080"]
    assert job["authorization"]["credentials_file"] == "/run/secrets/ecg_dicom_token"
