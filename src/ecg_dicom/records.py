"""The small frozen records the pipeline stages hand to each other.

load -> render -> detect -> build -> send.  Every stage takes and returns these
records (or pydicom datasets at the DICOM edges), so each stage can be tested
alone and swapped without touching the others.

Coordinates on a page are pixels of ``Page.image`` (x to the right, y down),
and the same pixels are the pixels of the annotated Secondary Capture: the SC
is the page the model saw, with the boxes drawn on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydicom import Dataset

#: The four detector classes, in the order of the model's class indices
#: (names as in the original application's Roboflow project).
CLASS_NAMES: tuple[str, ...] = ("ECG HB", "History_MI", "MI-ECG", "Normal-ECG")
#: The one class that means "Normal"; every other class means "Abnormal".
NORMAL_CLASS = "Normal-ECG"

#: The overall result.  "Normal" / "Abnormal" when the detector read a 12-lead
#: page (detect.decide); "Not interpretable" when it could not: no ECG chart found
#: on the page, or a signal that cannot make the page the model reads (flat, not a
#: number after calibration, too short, absurd sampling rate, not 12 leads), with
#: the reason in ``Classification.reason``.  Never a Normal or Abnormal call then.
Label = Literal["Normal", "Abnormal", "Not interpretable"]
NOT_INTERPRETABLE: Label = "Not interpretable"
NORMAL: Label = "Normal"
ABNORMAL: Label = "Abnormal"

#: The twelve standard leads, in the order of the printed page (and of the SR's
#: statement that a 12-lead page was read).
STANDARD_LEADS: tuple[str, ...] = (
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
)


@dataclass(frozen=True)
class Signals:
    """Calibrated ECG signals read from one DICOM waveform multiplex group.

    ``data`` has one row per channel, in microvolts (float32), all channels at
    ``sampling_frequency`` Hz.  ``leads`` names each row with a standard lead
    name ("I", "II", "III", "aVR", "aVL", "aVF", "V1".."V6") where the channel
    could be identified, else with the channel's own label.
    """

    leads: tuple[str, ...]
    data: np.ndarray
    sampling_frequency: float
    group_label: str = ""
    #: Median (representative) beats, when the object carries a MEDIAN BEAT group.
    median: Signals | None = None
    #: Header lines for the page (patient, date, speed/gain, filters, the cart's
    #: own measurements and statements); drawn outside the chart frame.
    header: tuple[str, ...] = ()
    #: Index of the multiplex group in WaveformSequence, for SR references.
    group_index: int = 0

    @property
    def duration(self) -> float:
        """Length of the recording in seconds."""
        return float(self.data.shape[1]) / float(self.sampling_frequency)


@dataclass(frozen=True)
class LeadRegion:
    """Where one lead segment is drawn on a rendered page.

    Maps a box on the page back to a lead and a time range of the source
    waveform: pixel x in [x0, x1) shows seconds [t0, t1) of ``lead``.
    """

    lead: str
    x0: float
    y0: float
    x1: float
    y1: float
    t0: float
    t1: float


@dataclass(frozen=True)
class Page:
    """The RGB page image the model reads (H x W x 3, uint8).

    ``px_per_mm`` is known for rendered waveforms (fixed, see render.py) and
    ``None`` for received pictures of unknown scale.  ``regions`` is empty for
    image sources.
    """

    image: np.ndarray
    source_kind: Literal["waveform", "image", "pdf"]
    px_per_mm: float | None = None
    regions: tuple[LeadRegion, ...] = ()
    #: Chart frame (x0, y0, x1, y1) in pixels when known.
    frame: tuple[float, float, float, float] | None = None
    header: tuple[str, ...] = ()
    #: Which multiplex group / frame of the source the page shows.
    source_index: int = 0


@dataclass(frozen=True)
class Detection:
    """One box found by the detector, in page pixels."""

    class_name: str
    confidence: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1


@dataclass(frozen=True)
class Classification:
    """The detector's result for one page, reduced to Normal / Abnormal, or
    "Not interpretable" with the ``reason``.

    ``abnormal_score`` in [0, 1] is the quantity thresholded by the decision
    rule (see detect.decide); it is what AUROC is computed on (0 when not
    interpretable).  ``class_name`` / ``confidence`` are those of the most
    confident box of the side the label names (None / 0 when not interpretable).
    """

    label: Label
    class_name: str | None
    confidence: float
    abnormal_score: float
    detections: tuple[Detection, ...]
    model_name: str
    model_version: str
    #: How the network was computed, e.g. "openvino-int8 int8" (runtime and precision);
    #: recorded as an Algorithm Parameter in the SR.  Empty when not known.
    runtime: str = ""
    #: Why the page is not interpretable, in words for the people reading the result
    #: (written into the SR and drawn on the SC); empty for Normal / Abnormal.
    reason: str = ""
    #: The calibrated probability of abnormal: ``abnormal_score`` through the weights'
    #: calibration, fitted on out-of-fold predictions (ecg_dicom.model.calibration);
    #: None when the weights have none (the raw score stands in, "uncalibrated").
    calibrated: float | None = None
    #: Which calibration made ``calibrated`` (e.g. "platt 1a2b3c4d"); empty: none.
    calibration: str = ""
    #: What straightening did to a picture before the model read it (e.g. "rotation
    #: -7.02 deg", "none"; pages.straighten); empty for a rendered waveform.
    straightening: str = ""

    @property
    def abnormal_probability(self) -> float:
        """The probability of abnormal the decision and the SR use: ``calibrated``
        when the weights have a calibration, else the raw ``abnormal_score``."""
        return float(self.abnormal_score if self.calibrated is None else self.calibrated)

    @property
    def probability(self) -> float | None:
        """The probability of the stated finding, as the SR's Probability (122157, DCM).

        :attr:`abnormal_probability` for "Abnormal", 1 minus it for "Normal"; None for
        "Not interpretable", which states no finding.  With a calibration
        (:mod:`ecg_dicom.model.calibration`) it is a fitted probability: of the pages
        given 0.8, about 8 in 10 were abnormal in cross-validation; without one it is
        the raw score (the share of the model's evidence that is abnormal), and results
        say "uncalibrated".  Not the top box's confidence: that is the detector's
        confidence in one box, not in the call.
        """
        if self.label == ABNORMAL:
            return self.abnormal_probability
        if self.label == NORMAL:
            return 1.0 - self.abnormal_probability
        return None

    @property
    def probability_kind(self) -> str:
        """``calibrated (platt 1a2b3c4d)`` or ``uncalibrated`` (SR Algorithm Parameters)."""
        return f"calibrated ({self.calibration})" if self.calibrated is not None else (
            "uncalibrated")

    @property
    def decisive(self) -> tuple[Detection, ...]:
        """The detections that count for the decision, most confident first.

        detect.decide computes ``abnormal_score = a / (a + n)`` from only two
        numbers: ``n``, the highest confidence of a Normal-ECG box, and ``a``, the
        highest confidence of a box of any other class.  The decisive boxes are the
        boxes that carry those maxima: the most confident Normal-ECG box and the
        most confident abnormal box (every box tied at a side's maximum, since
        either alone gives the same score).  Any other box could be removed without
        changing the result; only decisive boxes become coded findings in the SR.
        Empty when not interpretable.
        """
        if self.label == NOT_INTERPRETABLE:
            return ()
        normal = max(
            (d.confidence for d in self.detections if d.class_name == NORMAL_CLASS), default=None
        )
        abnormal = max(
            (d.confidence for d in self.detections if d.class_name != NORMAL_CLASS), default=None
        )
        return tuple(
            d for d in self.detections
            if d.confidence == (normal if d.class_name == NORMAL_CLASS else abnormal)
        )

    def to_dict(self) -> dict[str, object]:
        probability = self.probability
        return {
            "label": self.label,
            "reason": self.reason,
            "probability": None if probability is None else round(probability, 4),
            "class_name": self.class_name,
            "confidence": round(self.confidence, 4),
            "abnormal_score": round(self.abnormal_score, 4),
            "calibrated": None if self.calibrated is None else round(self.calibrated, 4),
            "calibration": self.calibration or "uncalibrated",
            "straightening": self.straightening,
            "detections": [
                {
                    "class_name": d.class_name,
                    "confidence": round(d.confidence, 4),
                    "box": [round(v, 1) for v in d.box],
                }
                for d in self.detections
            ],
            "model_name": self.model_name,
            "model_version": self.model_version,
            "runtime": self.runtime,
            "notice": "AI result - not for diagnostic use",
        }


@dataclass(frozen=True)
class Outputs:
    """The two result objects built for one source instance: the annotated SC and the SR."""

    sc: Dataset
    sr: Dataset


@dataclass(frozen=True)
class DocumentReference:
    """Where an earlier result SR lives (for the Predecessor Documents Sequence,
    PS3.3 C.17.2.3): its study, series, SOP class and SOP instance."""

    study_instance_uid: str
    series_instance_uid: str
    sop_class_uid: str
    sop_instance_uid: str


@dataclass(frozen=True)
class ResultHistory:
    """The result an ECG was last delivered with (the ledger's ``outputs`` table).

    ``built_sr`` is the SOP Instance UID the SR was built with, ``sent`` where the
    PACS holds it (a fallback SR class has its own UID), ``replaced`` the SR that
    one replaced.  The next build of the same ECG keeps the same Predecessor
    Documents Sequence when its content (and so its UID) is unchanged, and names
    ``sent`` as its predecessor when it changed (see build.build_outputs).
    """

    built_sr: str
    sent: DocumentReference
    replaced: DocumentReference | None = None

    def predecessor_of(self, sr_sop_instance_uid: str) -> DocumentReference | None:
        """The SR that an SR built with this UID replaces."""
        return self.replaced if sr_sop_instance_uid == self.built_sr else self.sent
