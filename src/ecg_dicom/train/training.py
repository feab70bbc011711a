"""Train the ECG page detector with ultralytics, offline and with ECG-safe augmentation.

Why these settings:

* **No mosaic, no mirroring.**  A mosaic of four quarter-pages, or a mirrored page,
  is no longer an ECG a cart could print (lead order, time direction and the polarity
  of deflections carry the diagnosis), so the model must never learn from them.
* **What users send**: rotation, shear, perspective, crop/scale, grid colour and
  photo/scan defects (light, shadow, blur, noise, JPEG) -- :mod:`ecg_dicom.train.augment`,
  the same settings as the GPU run that made the shipped model
  (``scripts/train_folds_gpu.py``).
* **Class balance by oversampling** the training list (acute MI has ~19 training
  pages): see :func:`ecg_dicom.train.balance.oversampled_train_list`.
* **Offline**: ultralytics otherwise probes the network at import, tries to sync
  settings and downloads Arial.ttf for its plots; :func:`ecg_dicom.model.prepare_offline`
  prevents all three.  No pretrained weights are used: the model is built from its yaml.
* **Time budget**: ultralytics' ``time`` (hours) re-fits the number of epochs and the
  learning-rate schedule after every epoch, so a CPU run ends on its own, annealed.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ecg_dicom.model import prepare_offline, torch_device
from ecg_dicom.model.weights import checksum_sidecar, weights_checksum
from ecg_dicom.train.augment import ROBUST_GEOMETRY, install
from ecg_dicom.train.balance import balanced_data_yaml
from ecg_dicom.train.seen import write_training_record

#: Augmentation settings for whole-page ECGs (ultralytics argument names): nothing a cart
#: could not print (no mosaic, mixup, copy-paste, flips or erasing), and the photo/scan
#: geometry and colour of :data:`ecg_dicom.train.augment.ROBUST_GEOMETRY`; the photo
#: defects are added by :func:`ecg_dicom.train.augment.install`.
ECG_AUGMENTATION: dict[str, Any] = {
    "mosaic": 0.0,
    "close_mosaic": 0,
    "mixup": 0.0,
    "cutmix": 0.0,
    "copy_paste": 0.0,
    "fliplr": 0.0,
    "flipud": 0.0,
    "erasing": 0.0,
    **ROBUST_GEOMETRY,
}


def hardware_description() -> dict[str, str]:
    """Where a run happens: CPU model and cores, GPU when present, library versions."""
    import torch
    import ultralytics

    cpu = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cpu_count": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        "torch": torch.__version__,
        "ultralytics": ultralytics.__version__,
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


@dataclass
class TrainConfig:
    """Everything that defines a training run (written into the training record)."""

    data: Path
    model: str = "yolov8m.yaml"
    imgsz: int = 640
    epochs: int = 100
    #: Hours; when > 0 ultralytics fits the epoch count and LR schedule to it.
    time_hours: float = 0.0
    batch: int = 8
    device: str = "auto"
    workers: int = 2
    threads: int = 2
    seed: int = 0
    cache: str | bool = "ram"
    balance: bool = True
    project: Path = Path("runs/train")
    name: str = "ecg"
    patience: int = 100
    warmup_epochs: float = 1.0
    plots: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def resolved_device(self) -> str:
        """``device`` by the runtime's one rule (:func:`ecg_dicom.model.torch_device`):
        "auto" is the first CUDA GPU when there is one, else the CPU."""
        import torch

        return torch_device(self.device, torch.cuda.is_available())

    def ultralytics_args(self, data_yaml: Path) -> dict[str, Any]:
        """The keyword arguments for ``YOLO.train``."""
        args: dict[str, Any] = {
            "data": str(data_yaml),
            "imgsz": self.imgsz,
            "epochs": self.epochs,
            "batch": self.batch,
            "device": self.resolved_device(),
            "workers": self.workers,
            "seed": self.seed,
            "deterministic": True,
            "cache": self.cache,
            "project": str(Path(self.project).absolute()),
            "name": self.name,
            "exist_ok": True,
            "pretrained": False,
            "patience": self.patience,
            "warmup_epochs": self.warmup_epochs,
            "plots": self.plots,
            "val": True,
            **ECG_AUGMENTATION,
            **self.extra,
        }
        if self.time_hours > 0:
            args["time"] = self.time_hours
        return args


def write_checksums(folder: Path) -> dict[str, str]:
    """Write ``<weights>.sha256`` (``sha256sum`` format) beside every ``.pt`` in
    ``folder``: the service verifies weights against it before it uses them
    (:func:`ecg_dicom.model.verify_weights`).  Returns name -> checksum."""
    sums: dict[str, str] = {}
    for weights in sorted(Path(folder).glob("*.pt")):
        sums[weights.name] = weights_checksum(weights)
        checksum_sidecar(weights).write_text(f"{sums[weights.name]}  {weights.name}\n",
                                             encoding="utf-8")
    return sums


def train_model(config: TrainConfig, *, resume: bool = False) -> dict[str, Any]:
    """Train (or resume) a detector and return the training record.

    The record (also written to ``<run>/training-record.json``) says what was
    trained, on which hardware, with which arguments, for how long, and where the
    best and last weights are.  Beside each weights file goes its ``.sha256``
    (:func:`write_checksums`), and ``<run>/training-pages.json`` lists the pages of
    the training split (:mod:`ecg_dicom.train.seen`: ``evaluate`` warns about them).
    ``resume=True`` continues ``<run>/weights/last.pt``
    with the arguments saved in it (ultralytics' own resume).
    """
    prepare_offline(config.threads)
    install()
    from ultralytics import YOLO

    run_dir = Path(config.project).absolute() / config.name
    last = run_dir / "weights" / "last.pt"
    started = time.time()
    if resume:
        if not last.exists():
            raise FileNotFoundError(f"cannot resume: {last} does not exist")
        model = YOLO(str(last))
        model.train(resume=True)
        args: dict[str, Any] = {"resume": str(last)}
    else:
        data_yaml = Path(config.data)
        if config.balance:
            data_yaml = balanced_data_yaml(data_yaml, seed=config.seed)
        args = config.ultralytics_args(data_yaml)
        model = YOLO(config.model)
        model.train(**args)
    wall = time.time() - started
    trainer = model.trainer
    record: dict[str, Any] = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
        "ultralytics_args": args,
        "hardware": hardware_description(),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_seconds": round(wall, 1),
        "epochs_completed": int(getattr(trainer, "epoch", -1)) + 1 if trainer else None,
        "best": str(run_dir / "weights" / "best.pt"),
        "last": str(last),
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    record["sha256"] = write_checksums(run_dir / "weights")
    if Path(config.data).is_file():
        record["training_pages"] = str(write_training_record(
            run_dir, Path(config.data), weights_sha256=sorted(record["sha256"].values())))
    (run_dir / "training-record.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    return record
