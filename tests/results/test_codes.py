"""codes.py: a code for every detector class and result label, unknown classes
refused, Procedure Reported chosen by the input's SOP class and leads."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom import Dataset

from ecg_dicom.records import CLASS_NAMES, NORMAL_CLASS, STANDARD_LEADS, LeadRegion, Page
from ecg_dicom.results.codes import (
    ABNORMAL_ECG,
    ECG_PROCEDURE,
    FINDING_CODES,
    LABEL_CODES,
    NORMAL_ECG,
    TWELVE_LEAD_ECG_PROCEDURE,
    finding_code,
    procedure_reported,
)
from ecg_dicom.sop import GENERAL_ECG, SECONDARY_CAPTURE


def _page(leads: tuple[str, ...]) -> Page:
    regions = tuple(LeadRegion(lead, 0, 0, 10, 10, 0.0, 2.5) for lead in leads)
    return Page(image=np.zeros((10, 10, 3), np.uint8), source_kind="waveform", regions=regions)


def _source(sop_class: str) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    return ds


def test_every_class_and_label_has_a_code() -> None:
    assert set(FINDING_CODES) == set(CLASS_NAMES)
    assert FINDING_CODES[NORMAL_CLASS] == NORMAL_ECG
    assert LABEL_CODES == {"Normal": NORMAL_ECG, "Abnormal": ABNORMAL_ECG}
    assert finding_code("MI-ECG").value == "57054005"


def test_unknown_class_is_refused() -> None:
    with pytest.raises(ValueError, match="has no code"):
        finding_code("Brugada")


def test_a_general_ecg_is_a_12_lead_ecg_only_with_the_12_leads() -> None:
    general = _source(GENERAL_ECG)
    assert procedure_reported(general, _page(STANDARD_LEADS)) == TWELVE_LEAD_ECG_PROCEDURE
    assert procedure_reported(general, _page(("I", "II", "III"))) == ECG_PROCEDURE
    # A picture does not say how many leads were recorded.
    assert procedure_reported(_source(SECONDARY_CAPTURE), _page(STANDARD_LEADS)) == ECG_PROCEDURE
