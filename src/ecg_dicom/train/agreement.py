"""Does a faster runtime or a lower precision reach PyTorch f32's decisions?

Before a runtime becomes a default, :func:`agreement` shows on real pages how often
it reaches the same Normal / Abnormal decision as PyTorch f32, and how far the
confidences move (``bench/bench_inference.py`` does the same with timings).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ecg_dicom.config import ModelSettings
from ecg_dicom.model import Detector
from ecg_dicom.records import Page


def agreement(
    settings: ModelSettings,
    images: Sequence[np.ndarray],
    runtimes: Sequence[tuple[str, str]] = (
        ("onnx", "auto"), ("openvino", "auto"), ("openvino", "f32")
    ),
) -> dict[str, dict[str, float]]:
    """Compare each (runtime, precision) with PyTorch f32 on the same RGB pages.

    For each runtime: ``agreement`` (share of pages with the same Normal / Abnormal /
    Not interpretable label), ``class_agreement`` (same top class), ``max_conf_diff`` (largest
    difference of the top-box confidence) and ``max_score_diff`` (of abnormal_score).
    """
    pages = [Page(image=image, source_kind="image") for image in images]
    reference = Detector(settings, runtime="pytorch")
    ref = [reference.detect(page) for page in pages]
    report: dict[str, dict[str, float]] = {}
    for runtime, precision in runtimes:
        detector = Detector(settings, runtime=runtime, precision=precision)
        got = [detector.detect(page) for page in pages]
        pairs = list(zip(ref, got, strict=True))
        n = max(len(images), 1)
        report[f"{runtime}-{precision}"] = {
            "pages": float(len(images)),
            "agreement": sum(a.label == b.label for a, b in pairs) / n,
            "class_agreement": sum(a.class_name == b.class_name for a, b in pairs) / n,
            "max_conf_diff": max((abs(a.confidence - b.confidence) for a, b in pairs), default=0.0),
            "max_score_diff": max(
                (abs(a.abnormal_score - b.abnormal_score) for a, b in pairs), default=0.0
            ),
        }
    return report
