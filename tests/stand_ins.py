"""Stand-ins for the model, for tests where the model is not the point (the worker's
state machine, the viewer's API): the real decision rule on one chosen box."""

from __future__ import annotations

from ecg_dicom.model import decide
from ecg_dicom.records import Classification, Detection, Page


class StandInDetector:
    """Answers with the real decision rule on one chosen box, or raises ``error``."""

    name = "stand-in"
    version = "0"
    runtime = "none"
    precision = "none"
    runtime_label = "none"

    def __init__(self, class_name: str = "Normal-ECG", error: Exception | None = None) -> None:
        self.class_name = class_name
        self.error = error
        self.calls = 0

    def detect(self, page: Page) -> Classification:
        self.calls += 1
        if self.error is not None:
            raise self.error
        height, width = page.image.shape[:2]
        box = (0.05 * width, 0.1 * height, 0.95 * width, 0.9 * height)
        return decide([Detection(self.class_name, 0.9, box)], model_name=self.name,
                      model_version=self.version)
