"""The small frozen records the pipeline stages hand to each other.

load -> render -> detect -> build -> send.  Every stage takes and returns these
records (or pydicom datasets at the DICOM edges), so each stage can be tested
alone and swapped without touching the others.

Coordinates on a page are pixels of ``Page.image`` (x to the right, y down),
and the same pixels are the pixels of the annotated Secondary Capture: the SC
is the page the model saw, with the boxes drawn on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

#: The four detector classes, in the order of the model's class indices
#: (names as in the original application's Roboflow project).
CLASS_NAMES: tuple[str, ...] = ("ECG HB", "History_MI", "MI-ECG", "Normal-ECG")
#: The one class that means "Normal"; every other class means "Abnormal".
NORMAL_CLASS = "Normal-ECG"

Label = Literal["Normal", "Abnormal", "No finding"]


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
    """The detector's result for one page, reduced to Normal / Abnormal.

    ``abnormal_score`` in [0, 1] is the quantity thresholded by the decision
    rule (see detect.decide); it is what AUROC is computed on.
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

    def to_dict(self) -> dict[str, object]:
        return {
            "label": self.label,
            "class_name": self.class_name,
            "confidence": round(self.confidence, 4),
            "abnormal_score": round(self.abnormal_score, 4),
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
    """The two result objects built for one source instance (pydicom datasets)."""

    sc: object
    sr: object
    notes: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class DocumentReference:
    """Where an earlier result SR lives (for the Predecessor Documents Sequence,
    PS3.3 C.17.2.3): its study, series, SOP class and SOP instance."""

    study_instance_uid: str
    series_instance_uid: str
    sop_class_uid: str
    sop_instance_uid: str
