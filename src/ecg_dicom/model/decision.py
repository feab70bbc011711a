"""The one decision rule: the boxes found on a page -> Normal / Abnormal / Not interpretable.

Used by the service and by evaluation alike, so the figures in the model card are
the service's figures.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ecg_dicom.records import NORMAL_CLASS, NOT_INTERPRETABLE, Classification, Detection

#: The reason given when the detector finds no box: the page shows no chart it knows.
NO_CHART_REASON = "the model found no ECG chart on the page"

if TYPE_CHECKING:
    from ecg_dicom.model.calibration import Calibration


def decide(
    detections: Iterable[Detection],
    *,
    model_name: str,
    model_version: str,
    threshold: float = 0.5,
    runtime: str = "",
    calibration: Calibration | None = None,
) -> Classification:
    """Reduce the boxes found on one page to Normal / Abnormal.

    * ``normal`` = highest confidence of a Normal-ECG box (0 if none);
      ``abnormal`` = highest confidence of a box of any other class (0 if none).
    * ``abnormal_score = abnormal / (abnormal + normal)``: the share of the
      evidence that is abnormal, in [0, 1]; it is the score AUROC is computed on.
    * The probability of abnormal: ``calibration(abnormal_score)`` when the weights
      have a calibration (:mod:`ecg_dicom.model.calibration`, fitted on out-of-fold
      predictions; recorded as ``calibrated``), else the raw ``abnormal_score``.
    * Label "Abnormal" iff that probability ``>= threshold``, else "Normal": the
      threshold always applies to the probability the result states, so "Abnormal"
      never comes with a probability of abnormal below it.  A calibration is monotone,
      so it moves the cut on the raw score, never the ranking (AUROC).
    * No box at all: "Not interpretable" (:func:`not_interpretable`, reason
      :data:`NO_CHART_REASON`; class None, confidence 0, score 0), never Normal:
      the model saw nothing it was trained on, which says nothing about the heart.
    * ``class_name`` / ``confidence`` are those of the most confident box of the
      side the label names (a Normal-ECG box for Normal, any other class for
      Abnormal), so the named class never contradicts the label; with the default
      threshold 0.5 that is the single most confident box.
    * Only the boxes carrying ``normal`` and ``abnormal`` count; the result names
      them (:attr:`~ecg_dicom.records.Classification.decisive`), and only they become
      coded findings in the SR.  ``probability`` is the probability of abnormal, or 1
      minus it for Normal.
    * ``runtime`` (what computed the boxes) is carried into the result as given.

    Why a ratio and not the top box alone: the detector often puts boxes of two
    classes on the same chart frame; the ratio uses both, and the threshold then
    trades sensitivity for specificity on one continuous score.
    """
    boxes = tuple(sorted(detections, key=lambda d: d.confidence, reverse=True))
    if not boxes:
        return not_interpretable(NO_CHART_REASON, model_name, model_version, runtime)
    normal = max((d.confidence for d in boxes if d.class_name == NORMAL_CLASS), default=0.0)
    abnormal = max((d.confidence for d in boxes if d.class_name != NORMAL_CLASS), default=0.0)
    total = normal + abnormal
    score = abnormal / total if total > 0 else 0.5
    calibrated = None if calibration is None else calibration(score)
    abnormal_call = (score if calibrated is None else calibrated) >= threshold
    # A threshold of 0 (or above 1) can name a side without a box: then the top box.
    side = [d for d in boxes if (d.class_name != NORMAL_CLASS) == abnormal_call]
    named = (side or list(boxes))[0]
    return Classification(
        label="Abnormal" if abnormal_call else "Normal",
        class_name=named.class_name,
        confidence=float(named.confidence),
        abnormal_score=float(score),
        detections=boxes,
        model_name=model_name,
        model_version=model_version,
        runtime=runtime,
        calibrated=calibrated,
        calibration="" if calibration is None else calibration.tag,
    )


def not_interpretable(
    reason: str, model_name: str, model_version: str, runtime: str = ""
) -> Classification:
    """The result for a page or signal the model cannot interpret: label
    "Not interpretable" with ``reason``, no class, no box, no probability.

    The worker uses it for an input the renderer refused
    (:class:`~ecg_dicom.errors.NotInterpretableError`); :func:`decide` for a page
    without any box.
    """
    return Classification(
        label=NOT_INTERPRETABLE,
        class_name=None,
        confidence=0.0,
        abnormal_score=0.0,
        detections=(),
        model_name=model_name,
        model_version=model_version,
        runtime=runtime,
        reason=reason,
    )
