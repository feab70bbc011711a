"""Derive ONNX and OpenVINO models from the shipped ``.pt`` and check they agree with it.

Only the ``.pt`` is committed.  Runtime exports are derived on the machine that
runs them and cached under ``<cache_dir>/<sha256 of the .pt>/``, so a changed
``.pt`` can never be served by a stale export.  Before a faster runtime or a lower
precision becomes the default, :func:`agreement` shows on real pages how often it
reaches the same Normal / Abnormal decision as PyTorch f32, and how far the
confidences move.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ecg_dicom.config import ModelSettings

FORMATS = ("onnx", "openvino")
_EXPORT_LOCK = threading.Lock()


def _target(cache_dir: Path, checksum: str, fmt: str, shape: tuple[int, int]) -> Path:
    base = Path(cache_dir) / checksum
    size = f"{shape[0]}x{shape[1]}"
    return base / (f"model-{size}.onnx" if fmt == "onnx" else f"model-{size}_openvino_model")


def export_model(weights: Path, fmt: str, shape: tuple[int, int], out: Path) -> Path:
    """Export ``weights`` to ``fmt`` ("onnx" or "openvino") for input ``shape`` (h, w), into ``out``.

    Static shape, batch 1, f32 (the runtime chooses its own precision at load).
    ultralytics writes exports beside the weights, so the export runs on a copy in
    a temporary folder and the result is moved to ``out`` (atomic rename).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: use one of {FORMATS}")
    from ecg_dicom.train.training import prepare_offline

    prepare_offline()
    from ultralytics import YOLO

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        copy = Path(tmp) / "model.pt"
        shutil.copyfile(weights, copy)
        kwargs: dict[str, Any] = {
            "format": fmt, "imgsz": list(shape), "batch": 1, "half": False
        }
        if fmt == "onnx":
            kwargs.update(simplify=True, dynamic=False)
        produced = Path(YOLO(str(copy)).export(**kwargs))
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        produced.rename(out)
    return out


def cached_export(
    weights: Path, checksum: str, fmt: str, shape: tuple[int, int], cache_dir: Path
) -> Path:
    """The export of ``weights`` for ``fmt`` and input ``shape`` (h, w), made once and cached.

    The cache key is the weights' checksum (verified by the caller), the format and
    the input shape.
    """
    target = _target(cache_dir, checksum, fmt, shape)
    with _EXPORT_LOCK:
        if not target.exists():
            export_model(Path(weights), fmt, shape, target)
    return target


def agreement(
    settings: ModelSettings,
    images: Sequence[np.ndarray],
    runtimes: Sequence[tuple[str, str]] = (("onnx", "auto"), ("openvino", "auto"), ("openvino", "f32")),
) -> dict[str, dict[str, float]]:
    """Compare each (runtime, precision) with PyTorch f32 on the same RGB pages.

    For each runtime: ``agreement`` (share of pages with the same Normal / Abnormal /
    No finding label), ``class_agreement`` (same top class), ``max_conf_diff`` (largest
    difference of the top-box confidence) and ``max_score_diff`` (of abnormal_score).
    """
    from ecg_dicom.detect import Detector

    reference = Detector(settings, runtime="pytorch")
    ref = [reference.detect(_page(image)) for image in images]
    report: dict[str, dict[str, float]] = {}
    for runtime, precision in runtimes:
        detector = Detector(settings, runtime=runtime, precision=precision)
        got = [detector.detect(_page(image)) for image in images]
        n = max(len(images), 1)
        report[f"{runtime}-{precision}"] = {
            "pages": float(len(images)),
            "agreement": sum(a.label == b.label for a, b in zip(ref, got)) / n,
            "class_agreement": sum(a.class_name == b.class_name for a, b in zip(ref, got)) / n,
            "max_conf_diff": max(
                (abs(a.confidence - b.confidence) for a, b in zip(ref, got)), default=0.0
            ),
            "max_score_diff": max(
                (abs(a.abnormal_score - b.abnormal_score) for a, b in zip(ref, got)), default=0.0
            ),
        }
    return report


def _page(image: np.ndarray) -> Any:
    from ecg_dicom.stages import Page

    return Page(image=image, source_kind="image")


def load_rgb(path: Path) -> np.ndarray:
    """An image file as an RGB uint8 array (the form of ``Page.image``)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))
