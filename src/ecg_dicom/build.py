"""Build the two result objects for one processed ECG: the one call the worker makes.

The SC is built first because the SR points into it: its image regions are in
the SC's pixel space and reference the SC's SOP Instance UID, and the SC is
evidence of the SR (PS3.3 C.17.2.2).  Both are pure functions of the source,
the page, the result and the settings (see identity.py for the UIDs).
"""

from __future__ import annotations

from pydicom import Dataset

from ecg_dicom.config import Settings
from ecg_dicom.sc import build_sc
from ecg_dicom.sr import build_sr
from ecg_dicom.stages import Classification, Outputs, Page


def build_outputs(
    source: Dataset, page: Page, result: Classification, settings: Settings
) -> Outputs:
    """The annotated SC and the TID 1500 SR for ``source``, in that order.

    ``notes`` records facts about the build a person reading the job should know
    (what was found, and where the SR's coordinates live).
    """
    sc = build_sc(source, page, result, settings)
    sr = build_sr(source, sc, page, result, settings)
    found = (
        "no finding"
        if result.label == "No finding" or not result.detections
        else f"{result.label} ({result.class_name}, {len(result.detections)} box(es))"
    )
    notes = (
        f"SR {sr.SOPInstanceUID}: {found}",
        f"SC {sc.SOPInstanceUID}: image regions of the SR are in its pixel space",
    )
    return Outputs(sc=sc, sr=sr, notes=notes)
