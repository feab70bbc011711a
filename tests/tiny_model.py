"""A tiny YOLOv8n trained here in seconds, for tests that need *a* model, not a good one.

The network (YOLOv8n from its yaml, 64 px, one epoch on twelve synthetic pages) is
meaningless as a classifier; it lets a test run the service's whole model path
(export, int8 derivation, load, detect) in seconds instead of the minutes the
shipped YOLOv8m takes.  Serve it with ``model.imgsz`` :data:`IMGSZ`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ecg_dicom.model.weights import weights_checksum
from ecg_dicom.train.dataset import build_dataset
from ecg_dicom.train.training import TrainConfig, train_model

FOLDERS = ("heart_block", "history_mi", "mi", "normal")
#: The input size to serve the tiny model at (``model.imgsz``).
IMGSZ = 128


def tiny_page(seed: int) -> np.ndarray:
    """A white 160x120 page, pink grid in a frame, and a random-walk trace."""
    rng = np.random.default_rng(seed)
    img = np.full((120, 160, 3), 255, np.uint8)
    img[20:110:4, 8:152] = (240, 180, 180)
    img[20:110, 8:152:4] = (240, 180, 180)
    trace = np.clip(65 + np.cumsum(rng.integers(-3, 4, 144)), 25, 105)
    img[trace, np.arange(8, 152)] = 0
    return img


def train_tiny_weights(root: Path) -> Path:
    """Train the tiny model under ``root``; returns its ``.pt`` (with its ``.sha256``)."""
    for i, folder in enumerate(FOLDERS):
        (root / "src" / folder).mkdir(parents=True)
        for k in range(3):
            Image.fromarray(tiny_page(10 * i + k)).save(root / "src" / folder / f"{folder}-{k}.png")
    summary = build_dataset(root / "src", root / "ds", val_fraction=0.34, seed=0)
    record = train_model(TrainConfig(
        data=summary.data_yaml, model="yolov8n.yaml", imgsz=64, epochs=1, batch=4,
        device="cpu", workers=0, threads=2, cache=False, project=root / "runs", name="t",
        extra={"val": False, "amp": False},
    ))
    weights = Path(record["last"])
    if not weights.is_file() or record["epochs_completed"] != 1:
        raise RuntimeError(f"the tiny model did not train: {record}")
    (weights.parent / (weights.name + ".sha256")).write_text(weights_checksum(weights) + "\n")
    return weights
