"""Evaluation maths on known predictions (no model needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecg_dicom.model.detector import decide
from ecg_dicom.records import Classification, Detection
from ecg_dicom.train.evaluate import collect_pages, plot_confusion, score_predictions


def pred(name: str | None, conf: float, normal: float = 0.0) -> Classification:
    boxes = []
    if name is not None:
        boxes.append(Detection(name, conf, (0.0, 0.0, 1.0, 1.0)))
    if normal:
        boxes.append(Detection("Normal-ECG", normal, (0.0, 0.0, 1.0, 1.0)))
    return decide(boxes, model_name="m", model_version="v")


# Six pages with hand-checked outcomes.
TRUTH = ["ECG HB", "ECG HB", "History_MI", "MI-ECG", "Normal-ECG", "Normal-ECG"]
PREDICTIONS = [
    pred("ECG HB", 0.9),                 # right class, Abnormal (score 1.0)   TP
    pred("History_MI", 0.6, normal=0.2),  # wrong class, still Abnormal (0.75)  TP
    pred("Normal-ECG", 0.8),              # called Normal (0.0)                 FN
    pred(None, 0.0),                      # no box: not Abnormal (score 0)      FN
    pred("Normal-ECG", 0.7, normal=0.0),  # Normal (0.0)                        TN
    pred("MI-ECG", 0.4, normal=0.35),     # Abnormal (0.533)                    FP
]


def test_binary_figures() -> None:
    report = score_predictions(TRUTH, PREDICTIONS)
    assert report["counts"] == {"tp": 2, "tn": 1, "fp": 1, "fn": 2}
    assert report["accuracy"] == pytest.approx(3 / 6)
    assert report["sensitivity"] == pytest.approx(2 / 4)
    assert report["specificity"] == pytest.approx(1 / 2)
    assert report["no_finding"] == 1
    # Scores: abnormal [1.0, 0.75, 0.0, 0.0], normal [0.0, 0.5333].
    # Pairs (abnormal > normal): 1.0 beats both, 0.75 beats both, 0.0 ties 0.0 (0.5) and
    # loses to 0.533, twice -> (2 + 2 + 0.5 + 0.5) / 8.
    assert report["auroc"] == pytest.approx(5 / 8)


def test_confusion_matrix_rows_predicted_columns_true() -> None:
    cm = score_predictions(TRUTH, PREDICTIONS)["confusion_matrix"]
    assert cm["rows_predicted"][-1] == "no detection"
    assert cm["matrix"] == [
        [1, 0, 0, 0],  # predicted ECG HB
        [1, 0, 0, 0],  # predicted History_MI
        [0, 0, 0, 1],  # predicted MI-ECG
        [0, 1, 0, 1],  # predicted Normal-ECG
        [0, 0, 1, 0],  # no detection
    ]


def test_per_class_sensitivity() -> None:
    per_class = score_predictions(TRUTH, PREDICTIONS)["per_class"]
    assert per_class["ECG HB"] == {"pages": 2, "sensitivity": 0.5, "binary_sensitivity": 1.0}
    assert per_class["History_MI"]["sensitivity"] == 0.0
    assert per_class["MI-ECG"] == {"pages": 1, "sensitivity": 0.0, "binary_sensitivity": 0.0}
    assert per_class["Normal-ECG"]["sensitivity"] == 0.5
    assert per_class["Normal-ECG"]["binary_sensitivity"] == 0.5


def test_perfect_predictions() -> None:
    truth = ["ECG HB", "Normal-ECG", "MI-ECG", "Normal-ECG"]
    preds = [pred("ECG HB", 0.9), pred("Normal-ECG", 0.8), pred("MI-ECG", 0.5),
             pred("Normal-ECG", 0.6)]
    report = score_predictions(truth, preds)
    assert report["accuracy"] == 1.0 and report["auroc"] == 1.0
    assert report["class_accuracy"] == 1.0


def test_auroc_undefined_with_one_class() -> None:
    assert score_predictions(["ECG HB"], [pred("ECG HB", 0.9)])["auroc"] is None


def test_lengths_must_match() -> None:
    with pytest.raises(ValueError):
        score_predictions(TRUTH, PREDICTIONS[:-1])


def test_plot_is_written(tmp_path: Path) -> None:
    path = plot_confusion(score_predictions(TRUTH, PREDICTIONS), tmp_path / "cm.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_collect_pages_from_folders_and_split(tmp_path: Path) -> None:
    (tmp_path / "mi").mkdir()
    (tmp_path / "normal").mkdir()
    (tmp_path / "mi" / "a.jpg").write_bytes(b"")
    (tmp_path / "normal" / "b.png").write_bytes(b"")
    (tmp_path / "normal" / "notes.txt").write_text("not an image")
    assert collect_pages(tmp_path) == [
        ("MI-ECG", tmp_path / "mi" / "a.jpg"), ("Normal-ECG", tmp_path / "normal" / "b.png")
    ]
    split = tmp_path / "built"
    split.mkdir()
    (split / "split.json").write_text(
        '{"train": [], "val": [{"file": "/x/y.jpg", "class": "ECG HB", "frame": [0,0,1,1]}]}'
    )
    assert collect_pages(split) == [("ECG HB", Path("/x/y.jpg"))]
    with pytest.raises(FileNotFoundError):
        collect_pages(tmp_path / "mi")
