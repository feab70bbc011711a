"""The one decision rule (model.decision.decide: label, probability of the stated finding,
decisive boxes, Not interpretable)."""

from __future__ import annotations

import pytest

from ecg_dicom.model.decision import NO_CHART_REASON, decide, not_interpretable
from ecg_dicom.records import Detection

BOX = (10.0, 20.0, 300.0, 200.0)


def det(name: str, conf: float) -> Detection:
    return Detection(class_name=name, confidence=conf, box=BOX)


def run(*boxes: Detection, threshold: float = 0.5):
    return decide(boxes, model_name="m", model_version="v", threshold=threshold)


def test_no_box_is_not_interpretable_with_the_reason() -> None:
    result = run()
    assert (result.label, result.class_name, result.confidence, result.abnormal_score) == (
        "Not interpretable", None, 0.0, 0.0
    )
    assert result.reason == NO_CHART_REASON == "the model found no ECG chart on the page"
    assert result.probability is None and result.decisive == ()
    assert result.model_name == "m" and result.model_version == "v"
    as_dict = result.to_dict()
    assert as_dict["label"] == "Not interpretable" and as_dict["reason"] == NO_CHART_REASON
    assert as_dict["probability"] is None


def test_not_interpretable_helper() -> None:
    result = not_interpretable("the recording is flat", "m", "v", "onnx f32")
    assert (result.label, result.reason, result.runtime) == (
        "Not interpretable", "the recording is flat", "onnx f32")
    assert result.detections == () and result.class_name is None
    assert result.probability is None and result.abnormal_score == 0.0


def test_only_normal_is_normal() -> None:
    result = run(det("Normal-ECG", 0.9))
    assert result.label == "Normal" and result.abnormal_score == 0.0
    assert result.class_name == "Normal-ECG" and result.confidence == 0.9
    # The probability of the stated finding (Normal) is 1 - abnormal_score, not 0.9.
    assert result.probability == 1.0 and result.reason == ""


def test_only_abnormal_is_abnormal_even_when_weak() -> None:
    result = run(det("MI-ECG", 0.06))
    assert result.label == "Abnormal" and result.abnormal_score == 1.0
    assert result.probability == 1.0  # no normal evidence at all, however weak the box


def test_ratio_uses_best_box_of_each_side() -> None:
    result = run(det("Normal-ECG", 0.2), det("ECG HB", 0.6), det("History_MI", 0.3),
                 det("Normal-ECG", 0.1))
    assert result.abnormal_score == pytest.approx(0.6 / 0.8)
    assert result.label == "Abnormal" and result.probability == pytest.approx(0.75)
    assert result.class_name == "ECG HB" and result.confidence == 0.6
    # Boxes are reported most confident first.
    assert [d.confidence for d in result.detections] == [0.6, 0.3, 0.2, 0.1]
    # Only the best box of each side counts: the others change nothing.
    assert [(d.class_name, d.confidence) for d in result.decisive] == [
        ("ECG HB", 0.6), ("Normal-ECG", 0.2)]


def test_boxes_outside_decisive_do_not_change_the_result() -> None:
    full = run(det("Normal-ECG", 0.2), det("ECG HB", 0.6), det("History_MI", 0.3),
               det("MI-ECG", 0.25), det("Normal-ECG", 0.1))
    only = run(*full.decisive)
    assert (only.label, only.abnormal_score, only.class_name, only.confidence) == (
        full.label, full.abnormal_score, full.class_name, full.confidence)
    # ... and dropping a decisive box does change it.
    without = run(*(d for d in full.detections if d != full.decisive[-1]))
    assert without.abnormal_score != full.abnormal_score


def test_boxes_tied_at_a_sides_maximum_are_all_decisive() -> None:
    result = run(det("MI-ECG", 0.5), det("History_MI", 0.5), det("ECG HB", 0.2))
    assert [d.class_name for d in result.decisive] == ["MI-ECG", "History_MI"]


def test_normal_wins_when_more_confident() -> None:
    result = run(det("History_MI", 0.3), det("Normal-ECG", 0.7))
    assert result.abnormal_score == pytest.approx(0.3)
    assert result.label == "Normal" and result.class_name == "Normal-ECG"
    assert result.probability == pytest.approx(0.7)
    assert result.to_dict()["probability"] == 0.7
    assert {d.class_name for d in result.decisive} == {"Normal-ECG", "History_MI"}


def test_threshold_is_inclusive_and_moves_the_call() -> None:
    boxes = (det("MI-ECG", 0.4), det("Normal-ECG", 0.4))
    assert run(*boxes).label == "Abnormal"  # score 0.5 >= 0.5
    assert run(*boxes, threshold=0.51).label == "Normal"
    assert run(det("MI-ECG", 0.3), det("Normal-ECG", 0.7), threshold=0.25).label == "Abnormal"


def test_named_class_is_on_the_side_of_the_label() -> None:
    # A low threshold calls Abnormal although the top box is Normal-ECG: the named
    # class (SR Impression, SC headline) must then be the abnormal one, never "Normal".
    result = run(det("Normal-ECG", 0.7), det("MI-ECG", 0.3), threshold=0.25)
    assert result.label == "Abnormal"
    assert (result.class_name, result.confidence) == ("MI-ECG", 0.3)
    assert result.probability == pytest.approx(0.3)
    # Equal evidence at the default threshold: Abnormal, named by the abnormal box.
    tie = run(det("Normal-ECG", 0.4), det("MI-ECG", 0.4))
    assert (tie.label, tie.class_name) == ("Abnormal", "MI-ECG")
