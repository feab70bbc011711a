"""captions.py: the decision in words a reader understands, whose ECG it is, class
names for people."""

from __future__ import annotations

from pydicom import Dataset

from ecg_dicom.records import CLASS_NAMES, Detection
from ecg_dicom.results.captions import (
    DISPLAY_NAMES,
    decision_line,
    identity_line,
    person_name_text,
)
from results.samples import classification, not_interpretable_result


def test_display_names_cover_every_class() -> None:
    assert set(DISPLAY_NAMES) == set(CLASS_NAMES)
    assert DISPLAY_NAMES["MI-ECG"] == "Acute MI"
    assert DISPLAY_NAMES["ECG HB"] == "Abnormal heartbeat"
    assert DISPLAY_NAMES["History_MI"] == "History of MI"


def test_decision_line_says_the_decision_in_words() -> None:
    abnormal = classification(Detection("MI-ECG", 0.8, (0, 0, 10, 10)),
                       Detection("Normal-ECG", 0.3, (0, 0, 10, 10)), score=0.91)
    assert decision_line(abnormal) == "Abnormal — Acute MI (probability 0.91)"
    history = classification(Detection("History_MI", 0.7, (0, 0, 10, 10)), score=0.88)
    assert decision_line(history) == "Abnormal — History of MI (probability 0.88)"
    # Normal: the probability of Normal, i.e. 1 - the abnormal score.
    normal = classification(
        Detection("Normal-ECG", 0.9, (0, 0, 10, 10)), label="Normal", score=0.03
    )
    assert decision_line(normal) == "Normal (probability 0.97)"
    # Not interpretable, with the reason (or, without one, that nothing was found).
    assert decision_line(not_interpretable_result("the signal is flat")) == (
        "Not interpretable: the signal is flat")
    text = decision_line(not_interpretable_result())
    assert text.startswith("Not interpretable: ") and len(text) > len("Not interpretable: ")
    # No dataset class name anywhere.
    for line in (decision_line(abnormal), decision_line(history), decision_line(normal)):
        assert not any(name in line for name in ("MI-ECG", "History_MI", "ECG HB", "Normal-ECG"))


def test_identity_line_names_patient_id_and_study() -> None:
    ds = Dataset()
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "IMG-1"
    ds.PatientBirthDate = "19600101"
    ds.StudyDate = "20240102"
    ds.StudyTime = "101010"
    line = identity_line(ds)
    assert line == "Patient: Doe, Jane    ID: IMG-1    Born: 1960-01-01    Study: 2024-01-02 10:10"
    assert identity_line(Dataset()) == ""


def test_person_names_in_every_component_group() -> None:
    assert person_name_text("Yamada^Tarou=山田^太郎=やまだ^たろう") == "Yamada, Tarou (山田 太郎)"
    assert person_name_text("Παπαδόπουλος^Νίκος") == "Παπαδόπουλος, Νίκος"
    assert person_name_text("=김^민준") == "김 민준"
    assert person_name_text("Clark") == "Clark"
