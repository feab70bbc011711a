"""Start ``ecg-dicom worker`` as a real process for tests and benchmarks: a worker
"host" of its own, with its own spool and output folders (nothing shared with the
listener but Redis), configured by a site YAML as a hospital would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from serve_proc import MODEL_CACHE, WEIGHTS, ensure_default_model, stop_process


@dataclass
class WorkerProcess:
    """A running ``ecg-dicom worker --threads N`` in ``workdir``."""

    workdir: Path
    queue: dict[str, Any]
    threads: int = 1
    #: More settings, by section (e.g. ``{"model": {"threads": 1}}``).
    config: dict[str, dict[str, Any]] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.workdir / "worker.log"

    @property
    def spool_dir(self) -> Path:
        return self.workdir / "spool"

    @property
    def holder(self) -> str:
        """The name its leases carry in Redis (host:pid)."""
        assert self.proc is not None
        return f"{os.uname().nodename}:{self.proc.pid}"

    def start(self) -> WorkerProcess:
        ensure_default_model()
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg: dict[str, dict[str, Any]] = {
            "queue": self.queue,
            "storage": {"spool_dir": str(self.spool_dir),
                        "output_dir": str(self.workdir / "outputs"), "min_free_mb": 0},
            "model": {"weights": str(WEIGHTS), "export_cache_dir": str(MODEL_CACHE)},
            "audit": {"path": str(self.workdir / "audit.log")},
        }
        for section, values in self.config.items():
            cfg.setdefault(section, {}).update(values)
        cfg_path = self.workdir / "site.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg))
        env = {k: v for k, v in os.environ.items() if not k.startswith("ECG_DICOM_")}
        env["ECG_DICOM_CONFIG"] = str(cfg_path)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ecg_dicom", "worker", "--threads", str(self.threads)],
                cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        """SIGKILL: the worker is gone mid-job, with whatever it held."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self, timeout: float = 60.0) -> int:
        return stop_process(self.proc, timeout)
