"""A probability of abnormal that means what it says: the abnormal score, calibrated.

The decision rule's ``abnormal_score`` (:func:`~ecg_dicom.model.decision.decide`) is a
ratio of two box confidences: it ranks pages well (AUROC) but "0.8" is not "8 in 10
such pages are abnormal".  A :class:`Calibration` maps it to a probability fitted on
**out-of-fold** predictions (``ecg-dicom evaluate --folds``: each page scored by the
fold model that never saw it; the fit, the rule that chooses the method and the
measures are in :mod:`ecg_dicom.train.calibrate`), and the SR states that probability.

Two methods exist, both monotone, both applied with numpy alone:

* **platt**: ``p = sigmoid(a * logit(s) + b)`` on the log-odds of the score ``s``
  (clipped to [:data:`SCORE_EPS`, 1 - :data:`SCORE_EPS`]);
* **isotonic**: a monotone table (``x`` in log-odds of the score, ``y`` the
  probability), interpolated linearly, its output kept inside ``[floor, 1 - floor]``
  (``floor = 1 / (n + 2)``: ``n`` pages never prove a probability of exactly 0 or 1).

A calibration belongs to one set of weights: ``calibration.json`` records their SHA-256
and :func:`load_calibration` refuses (logs, and returns None: the service runs
uncalibrated) a file made for other weights, an unreadable one, or one that is not
monotone.  The file lives beside the weights (:func:`calibration_path`:
``weights/calibration.json`` for the shipped model).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

log = logging.getLogger("ecg_dicom.detect")

#: Scores are clipped to [SCORE_EPS, 1 - SCORE_EPS] before their log-odds are taken
#: (a page with boxes of one side only has score 0 or 1).
SCORE_EPS = 1e-3
#: The file beside the weights.
CALIBRATION_FILE = "calibration.json"
#: Version of the file's layout.
FORMAT_VERSION = 1

Method = Literal["platt", "isotonic"]


def logit(scores: np.ndarray | Sequence[float]) -> np.ndarray:
    """log(s / (1 - s)) of the scores clipped to [SCORE_EPS, 1 - SCORE_EPS]."""
    s = np.clip(np.asarray(scores, dtype=np.float64), SCORE_EPS, 1.0 - SCORE_EPS)
    return np.asarray(np.log(s / (1.0 - s)))


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z))."""
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


@dataclass(frozen=True)
class Calibration:
    """A fitted map from the abnormal score to the probability of abnormal.

    ``params``: ``{"a", "b"}`` for platt, ``{"x", "y", "floor"}`` for isotonic (``x``
    in log-odds of the score).  ``record``: how it was fitted (pages, source, ECE and
    Brier before/after, the candidates' log-losses), as written to the JSON file.
    """

    method: Method
    params: dict[str, Any]
    weights_sha256: str
    record: dict[str, Any] = field(default_factory=dict, compare=False)

    def apply(self, scores: np.ndarray | Sequence[float]) -> np.ndarray:
        """Calibrated probabilities of abnormal for an array of abnormal scores."""
        z = logit(scores)
        if self.method == "platt":
            return sigmoid(float(self.params["a"]) * z + float(self.params["b"]))
        floor = float(self.params["floor"])
        p = np.interp(z, np.asarray(self.params["x"], float), np.asarray(self.params["y"], float))
        return np.asarray(np.clip(p, floor, 1.0 - floor))

    def __call__(self, score: float) -> float:
        """The calibrated probability of abnormal of one abnormal score."""
        return float(self.apply([score])[0])

    @property
    def tag(self) -> str:
        """A short name of this calibration for results: ``platt 1a2b3c4d`` (method and
        the first 8 hex digits of the SHA-256 of its parameters)."""
        text = json.dumps(
            {"method": self.method, "params": self.params, "weights": self.weights_sha256},
            sort_keys=True,
        )
        return f"{self.method} {hashlib.sha256(text.encode()).hexdigest()[:8]}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "method": self.method,
            "params": self.params,
            "weights_sha256": self.weights_sha256,
            **self.record,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        method = data.get("method")
        if method not in ("platt", "isotonic"):
            raise ValueError(f"unknown calibration method {method!r}")
        params = dict(data["params"])
        needed = ("a", "b") if method == "platt" else ("x", "y", "floor")
        missing = [k for k in needed if k not in params]
        if missing:
            raise ValueError(f"{method} calibration lacks {', '.join(missing)}")
        if method == "isotonic" and (
            len(params["x"]) != len(params["y"]) or len(params["x"]) < 1
            or any(b < a for a, b in zip(params["y"], params["y"][1:], strict=False))
        ):
            raise ValueError("isotonic calibration table is not a monotone table")
        if method == "platt" and not float(params["a"]) > 0:
            raise ValueError("platt calibration slope must be positive (a monotone map)")
        record = {
            k: v for k, v in data.items()
            if k not in {"format", "method", "params", "weights_sha256"}
        }
        return cls(method=method, params=params, weights_sha256=str(data["weights_sha256"]),
                   record=record)

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        return path


def calibration_path(weights: Path) -> Path:
    """Where the calibration of ``weights`` lives: ``calibration.json`` in their folder."""
    return Path(weights).parent / CALIBRATION_FILE


def load_calibration(path: Path, weights_sha256: str) -> Calibration | None:
    """The calibration in ``path`` if it belongs to the weights ``weights_sha256``.

    None (and the reason logged) when there is no file, it cannot be read, or it was
    fitted for other weights: the service then states the raw score, "uncalibrated".
    """
    path = Path(path)
    if not path.is_file():
        log.info("no probability calibration (%s not found): probabilities are the raw "
                 "abnormal score, uncalibrated", path)
        return None
    try:
        calibration = Calibration.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("probability calibration %s not used, it cannot be read: %s", path, exc)
        return None
    if calibration.weights_sha256 != weights_sha256:
        log.warning(
            "probability calibration %s not used: it was fitted for weights %s, these are %s; "
            "probabilities are the raw abnormal score, uncalibrated",
            path, calibration.weights_sha256[:12], weights_sha256[:12],
        )
        return None
    log.info("probability calibration %s (%s) loaded", path, calibration.tag)
    return calibration
