"""The one decision rule (detect.decide: label, probability of the stated finding, decisive
boxes, Not interpretable) and the weights checks (detect.verify_weights)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ecg_dicom.config import ModelSettings
from ecg_dicom.errors import ModelError
from ecg_dicom.model.detector import (
    NO_CHART_REASON,
    decide,
    not_interpretable,
    verify_weights,
    weights_checksum,
)
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


def write_weights(tmp_path: Path, content: bytes = b"not really a model") -> Path:
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    return path


def test_checksum_is_sha256(tmp_path: Path) -> None:
    path = write_weights(tmp_path, b"x" * (3 << 20))
    assert weights_checksum(path) == hashlib.sha256(b"x" * (3 << 20)).hexdigest()


def test_verify_with_sidecar(tmp_path: Path) -> None:
    path = write_weights(tmp_path)
    digest = weights_checksum(path)
    (tmp_path / "model.pt.sha256").write_text(f"{digest}  model.pt\n")
    assert verify_weights(ModelSettings(weights=path)) == digest
    assert verify_weights(ModelSettings(weights=path, sha256=digest.upper())) == digest


def test_verify_with_setting_only(tmp_path: Path) -> None:
    path = write_weights(tmp_path)
    digest = weights_checksum(path)
    assert verify_weights(ModelSettings(weights=path, sha256=digest)) == digest


def test_missing_weights(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        verify_weights(ModelSettings(weights=tmp_path / "absent.pt"))


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    path = write_weights(tmp_path)
    (tmp_path / "model.pt.sha256").write_text(weights_checksum(path) + "  model.pt\n")
    path.write_bytes(b"something else")
    with pytest.raises(ModelError, match="model.pt.sha256 expects"):
        verify_weights(ModelSettings(weights=path))


def test_setting_and_sidecar_must_both_match(tmp_path: Path) -> None:
    path = write_weights(tmp_path)
    (tmp_path / "model.pt.sha256").write_text(weights_checksum(path) + "\n")
    with pytest.raises(ModelError, match="model.sha256 setting"):
        verify_weights(ModelSettings(weights=path, sha256="0" * 64))


def test_no_checksum_at_all_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no checksum"):
        verify_weights(ModelSettings(weights=write_weights(tmp_path)))


def test_blank_outside_frame() -> None:
    import numpy as np

    from ecg_dicom.model.detector import blank_outside_frame

    image = np.zeros((10, 20, 3), np.uint8)
    assert blank_outside_frame(image, None) is image
    out = blank_outside_frame(image, (2.0, 3.0, 12.5, 8.0))
    assert (out[3:8, 2:13] == 0).all()
    assert out[:3].min() == 255 and out[8:].min() == 255
    assert out[:, :2].min() == 255 and out[:, 13:].min() == 255
    assert image.max() == 0  # the page itself is untouched


def test_torch_device_choice() -> None:
    from ecg_dicom.model.detector import torch_device

    assert torch_device("auto", False) == "cpu"
    assert torch_device("auto", True) == "cuda:0"
    assert torch_device("cpu", True) == "cpu"
    assert torch_device("1", True) == "cuda:1"
    assert torch_device("cuda:0", True) == "cuda:0"
    with pytest.raises(ModelError, match="no CUDA GPU"):
        torch_device("0", False)
