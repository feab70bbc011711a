"""valid.py: strict writing -- a sender's value invalid for its VR, or a sequence
holding one, is never copied; empty values count as absent."""

from __future__ import annotations

import pytest
from pydicom import Dataset
from pydicom.sequence import Sequence as DicomSequence

from ecg_dicom.results.valid import copy_if_valid, is_empty, valid_element, valid_items


def test_invalid_values_are_not_copied() -> None:
    source = Dataset()
    source.PatientAge = "45"  # AS needs "045Y"
    source.PatientSize = "1.72"
    target = Dataset()
    copy_if_valid(source, target, "PatientAge")
    copy_if_valid(source, target, "PatientSize")
    copy_if_valid(source, target, "PatientWeight")  # absent
    assert "PatientAge" not in target and target.PatientSize == "1.72"
    assert "PatientWeight" not in target


@pytest.mark.filterwarnings("ignore:The value length .* exceeds the maximum length")
def test_a_sequence_with_an_invalid_item_is_not_copied() -> None:
    good, bad = Dataset(), Dataset()
    good.AccessionNumber = "A1"
    bad.AccessionNumber = "A" * 40  # SH: at most 16 characters
    source = Dataset()
    source.RequestAttributesSequence = DicomSequence([good])
    assert len(valid_items(source, "RequestAttributesSequence")) == 1
    source.RequestAttributesSequence = DicomSequence([good, bad])
    assert valid_element(source, "RequestAttributesSequence") is None
    assert valid_items(source, "RequestAttributesSequence") == []


def test_empty_values_count_as_absent() -> None:
    ds = Dataset()
    ds.PatientName = ""
    ds.OtherPatientIDsSequence = DicomSequence([])
    ds.PatientSize = "1.7"
    assert is_empty(ds["PatientName"]) and is_empty(ds["OtherPatientIDsSequence"])
    assert not is_empty(ds["PatientSize"])
