"""The detect stage: a :class:`~ecg_dicom.records.Page` -> its
:class:`~ecg_dicom.records.Classification`.

:class:`Detector` verifies the weights once (:mod:`ecg_dicom.model.weights`), loads the
model on the runtime :func:`~ecg_dicom.model.runtimes.resolve_runtime` chooses
(ONNX and OpenVINO models derived once and cached: :mod:`ecg_dicom.model.derive`), and
per page: blanks outside the chart frame, letterboxes (:mod:`ecg_dicom.model.preprocess`),
runs the network, maps the boxes back to page pixels (:func:`boxes_on_page`, the same
non-maximum suppression for every runtime) and applies the one decision rule
(:func:`~ecg_dicom.model.decision.decide`).  One detector serves every thread of a
process (see :mod:`ecg_dicom.model.runtimes` for how each runtime is made safe for that).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ecg_dicom.config import MODEL_RUNTIMES, ModelSettings
from ecg_dicom.errors import ModelError
from ecg_dicom.model.calibration import Calibration, calibration_path, load_calibration
from ecg_dicom.model.decision import decide
from ecg_dicom.model.derive import DERIVED_RUNTIMES, cached_export, int8_calibration_record
from ecg_dicom.model.offline import prepare_offline
from ecg_dicom.model.preprocess import blank_outside_frame, input_shape, letterbox
from ecg_dicom.model.runtimes import OnnxRuntime, OpenVinoRuntime, TorchRuntime, resolve_runtime
from ecg_dicom.model.weights import verify_weights
from ecg_dicom.records import CLASS_NAMES, Classification, Detection, Page

# The logger keeps its v0.1 name: log consumers filter on it (docs/architecture.md).
log = logging.getLogger("ecg_dicom.detect")

#: Non-maximum suppression IoU (ultralytics' default) and most boxes kept per page.
NMS_IOU = 0.7
MAX_DETECTIONS = 20


def boxes_on_page(
    raw: np.ndarray,
    scale: float,
    pad: tuple[float, float],
    page_shape: tuple[int, int],
    conf: float,
    names: tuple[str, ...] = CLASS_NAMES,
) -> tuple[Detection, ...]:
    """Raw network output (1, 4 + nc, anchors) -> boxes in page pixels, after NMS.

    Per-class NMS (not class-agnostic): boxes of different classes on the same
    frame are all kept, which is what :func:`decide` weighs against each other.
    """
    import torch

    prepare_offline()
    from ultralytics.utils.nms import non_max_suppression

    pred = torch.from_numpy(np.asarray(raw, dtype=np.float32))
    kept = non_max_suppression(pred, conf_thres=conf, iou_thres=NMS_IOU, max_det=MAX_DETECTIONS)[0]
    out: list[Detection] = []
    height, width = page_shape
    for x0, y0, x1, y1, score, cls in kept.tolist():
        box = (
            min(max((x0 - pad[0]) / scale, 0.0), float(width)),
            min(max((y0 - pad[1]) / scale, 0.0), float(height)),
            min(max((x1 - pad[0]) / scale, 0.0), float(width)),
            min(max((y1 - pad[1]) / scale, 0.0), float(height)),
        )
        out.append(Detection(class_name=names[int(cls)], confidence=float(score), box=box))
    return tuple(out)



class Detector:
    """The loaded model: verified once, then ``detect(page)`` per page.

    ``name`` is ``settings.name``; ``version`` is the weights' SHA-256.  The
    runtime is ``settings.runtime`` (``runtime`` overrides it, e.g. for benchmarks),
    resolved by :func:`resolve_runtime` when it is "auto"; ``precision`` overrides
    ``settings.precision`` for OpenVINO ("auto" or "f32").  After loading,
    ``runtime`` is the runtime that runs, ``precision`` the arithmetic it runs in
    ("f32", "bf16", "int8") and ``choice`` why it was chosen.

    ``calibration``: the probability calibration of these weights
    (:mod:`ecg_dicom.model.calibration`, ``calibration.json`` beside them), or None when
    there is none that belongs to them (results then state the raw score,
    "uncalibrated"); ``calibrate=False`` ignores it (``evaluate --folds`` scores the
    raw score of each fold model).
    """

    def __init__(
        self,
        settings: ModelSettings,
        *,
        runtime: str | None = None,
        precision: str | None = None,
        calibrate: bool = True,
    ) -> None:
        self.settings = settings
        self.version = verify_weights(settings)
        self.calibration: Calibration | None = (
            load_calibration(calibration_path(Path(settings.weights)), self.version)
            if calibrate else None
        )
        self.name = settings.name
        overrides = {
            k: v for k, v in (("runtime", runtime), ("precision", precision)) if v is not None
        }
        effective = settings.model_copy(update=overrides)
        self.choice = resolve_runtime(effective)
        self.runtime = self.choice.runtime
        self.precision = self.choice.precision
        self.input_shape = input_shape(settings.imgsz)
        self.names: tuple[str, ...] = CLASS_NAMES
        weights = Path(settings.weights)
        self._run: Any
        if self.runtime == "pytorch":
            torch_runtime = TorchRuntime(weights, settings)
            self.names = torch_runtime.names
            self._run = torch_runtime
        elif self.runtime in DERIVED_RUNTIMES:
            exported = cached_export(
                weights, self.version, self.runtime, self.input_shape, settings.export_cache_dir
            )
            if self.runtime == "openvino-int8":
                log.info(
                    "int8 model calibration",
                    extra={"calibration": int8_calibration_record(exported)},
                )
            if self.runtime == "onnx":
                self._run = OnnxRuntime(exported, settings)
            else:  # f32 IR, or the int8 IR (its int8 layers run int8 at any precision hint)
                openvino = OpenVinoRuntime(exported, settings, effective.precision)
                self.precision = "int8" if self.runtime == "openvino-int8" else openvino.precision
                self._run = openvino
        else:
            raise ModelError(
                f"unknown model runtime {self.runtime!r}: "
                f"use {', '.join(MODEL_RUNTIMES[:-1])} or {MODEL_RUNTIMES[-1]}"
            )
        if set(self.names) != set(CLASS_NAMES):
            raise ModelError(f"model classes {self.names} are not the expected {CLASS_NAMES}")
        #: What every result records as having computed it (SR Algorithm Parameters).
        self.runtime_label = f"{self.runtime} {self.precision}"
        log.info(
            "model loaded",
            extra={
                "model": self.name,
                "version": self.version,
                "runtime": self.runtime,
                "precision": self.precision,
                "runtime_reason": self.choice.reason,
                "probability": self.probability_kind,
            },
        )

    @property
    def probability_kind(self) -> str:
        """``calibrated (platt 1a2b3c4d)`` or ``uncalibrated`` (``/healthz``, the logs)."""
        if self.calibration is None:
            return "uncalibrated"
        return f"calibrated ({self.calibration.tag})"

    def detections(self, image: np.ndarray) -> tuple[Detection, ...]:
        """The boxes on an RGB page image (H x W x 3 uint8), in page pixels."""
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        tensor, scale, pad = letterbox(np.ascontiguousarray(image[..., :3]), self.input_shape)
        raw = self._run(tensor)
        return boxes_on_page(raw, scale, pad, image.shape[:2], self.settings.conf, self.names)

    def detect(self, page: Page) -> Classification:
        """Classify one page with :func:`decide` at ``settings.abnormal_threshold``
        (applied to the calibrated probability when the weights have a calibration).

        When the page's chart frame is known (rendered waveforms), everything
        outside it is painted white first: the training pages were prepared that
        way, so header text must not reach the model (it could not have learned
        from it, and it is not what it was validated on).
        """
        return decide(
            self.detections(blank_outside_frame(page.image, page.frame)),
            model_name=self.name,
            model_version=self.version,
            threshold=self.settings.abnormal_threshold,
            runtime=self.runtime_label,
            calibration=self.calibration,
        )
