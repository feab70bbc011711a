"""Start ``ecg-dicom serve`` as a real process on free loopback ports, for tests.

The service is configured only through a site YAML and the environment, as a
hospital would configure it.  Readiness is awaited by polling ``/healthz``,
never by sleeping.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ecg_dicom.config import ModelSettings
from ecg_dicom.model import cached_export, input_shape, resolve_runtime, weights_checksum
from peers import dcmtk_env, free_port, require_tool

ROOT = Path(__file__).resolve().parents[1]
#: The weights the service runs with (pytest --weights; default: the shipped ones).
WEIGHTS = ROOT / "weights" / "ecg-yolov8m.pt"
#: One export cache for every service a test starts (the default ``var/model-cache``
#: of a checkout): exports are keyed by the weights' checksum, so sharing is safe,
#: and the int8 model is derived once per checkout instead of once per test.
MODEL_CACHE = ROOT / "var" / "model-cache"
#: What the viewer's pages send with a POST (web/security.py's double-submit CSRF check):
#: the ``csrf`` cookie and the same value as ``X-CSRF-Token``.
CSRF_HEADERS = {"Cookie": "csrf=serve-proc-test", "X-CSRF-Token": "serve-proc-test"}


@functools.cache
def ensure_default_model() -> Path:
    """Derive the model the default runtime uses on this machine, once per test session.

    ``model.runtime: auto`` resolves per machine (on a CPU: the int8 OpenVINO model,
    about two minutes to derive; see ``ecg_dicom.model.resolve_runtime``).  Every
    service and CLI the tests start then finds it in the shared cache
    (:data:`MODEL_CACHE`) instead of deriving it while a test waits for readiness.
    Cached per checkout, keyed by the weights' checksum; only the tests that run the
    service's model pay for it.  Returns the derived model's path (or the weights).
    """
    runtime = resolve_runtime(ModelSettings()).runtime
    if runtime == "pytorch":
        return WEIGHTS
    return cached_export(
        WEIGHTS, weights_checksum(WEIGHTS), runtime, input_shape(ModelSettings().imgsz), MODEL_CACHE
    )


@dataclass
class ServeProcess:
    """A running ``ecg-dicom serve`` and where it keeps its state."""

    workdir: Path
    config: dict[str, Any]
    dicom_port: int = 0
    http_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    #: Run the package found here instead of the installed one (e.g. an earlier
    #: version's ``src``, for the upgrade test).
    pythonpath: Path | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.workdir / "serve.log"

    @property
    def spool_dir(self) -> Path:
        return self.workdir / "spool"

    @property
    def output_dir(self) -> Path:
        return self.workdir / "outputs"

    def start(self, timeout: float = 120.0, *, wait_model: bool = True) -> ServeProcess:
        """Start it; return once ``/healthz`` answers and (``wait_model``) the model is
        ready (the listener opens before: ``serve`` prepares the model in a thread)."""
        if "weights" not in self.config.get("model", {}):
            ensure_default_model()
        if not self.dicom_port:
            self.dicom_port = free_port()
            self.http_port = free_port()
        cfg: dict[str, dict[str, Any]] = {
            "dicom": {"port": self.dicom_port},
            "http": {"port": self.http_port},
            "storage": {
                "spool_dir": str(self.spool_dir),
                "output_dir": str(self.output_dir),
                "min_free_mb": 0,
            },
            "model": {
                "weights": str(WEIGHTS),
                "export_cache_dir": str(MODEL_CACHE),
            },
        }
        if self.pythonpath is None:  # an earlier version (upgrade test) has no audit section
            # In the work folder (a default would be under the checkout's var/).
            cfg["audit"] = {"path": str(self.workdir / "var" / "audit" / "audit.log")}
        for section, values in self.config.items():
            cfg.setdefault(section, {}).update(values)
        cfg_path = self.workdir / "site.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg))
        env = {k: v for k, v in os.environ.items() if not k.startswith("ECG_DICOM_")}
        env["ECG_DICOM_CONFIG"] = str(cfg_path)
        if self.pythonpath is not None:
            env["PYTHONPATH"] = str(self.pythonpath)
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the fd
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ecg_dicom", "serve"],
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode}:\n{self.log()}")
            try:
                model = self.get("/healthz").get("model", "ready")  # earlier versions: none
            except OSError:
                time.sleep(0.1)
                continue
            if model.startswith("failed"):
                raise RuntimeError(f"serve's model {model}:\n{self.log()}")
            if model != "preparing" or not wait_model:  # "not loaded": no workers here
                return self
            time.sleep(0.1)
        raise TimeoutError(f"serve not ready after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=10) as rsp:
            body = rsp.read()
        return json.loads(body) if body.startswith((b"{", b"[")) else body.decode()

    def post_file(self, path: Path, content_type: str = "application/octet-stream",
                  timeout: float = 180.0) -> tuple[int, Any]:
        """POST a file to ``/api/classify`` as a browser's upload form does.

        Returns (HTTP status, body): the body parsed as JSON when it is JSON, else text.
        """
        boundary = uuid.uuid4().hex
        body = (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{path.name}\"\r\nContent-Type: {content_type}\r\n\r\n"
        ).encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}/api/classify", data=body, method="POST",
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}", **CSRF_HEADERS},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as rsp:
                status, raw = rsp.status, rsp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def jobs(self) -> list[dict[str, Any]]:
        return list(self.get("/jobs?limit=100000"))

    def wait_jobs(self, count: int, states: tuple[str, ...] = ("done", "failed"),
                  timeout: float = 300.0) -> list[dict[str, Any]]:
        """Wait until ``count`` jobs are in one of ``states``; return all jobs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            jobs = self.jobs()
            if sum(j["state"] in states for j in jobs) >= count:
                return jobs
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"serve died:\n{self.log()}")
            time.sleep(0.2)
        raise TimeoutError(f"jobs not finished: {[j['state'] for j in self.jobs()]}\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as in a power cut of the process."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self, timeout: float = 60.0) -> int:
        return stop_process(self.proc, timeout)


def stop_process(proc: subprocess.Popen[Any] | None, timeout: float = 60.0) -> int:
    """SIGTERM, then its exit status (0 when never started); killed, and the timeout
    raised, when it does not end within ``timeout`` s."""
    if proc is None or proc.poll() is not None:
        return proc.returncode if proc else 0
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def run_tool(tool: str, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run a dcmtk tool (which must be installed: a missing tool fails the test)."""
    return subprocess.run(
        [require_tool(tool), *args], env=dcmtk_env(), capture_output=True, text=True, check=False,
        timeout=timeout,
    )
