"""The probability calibration (model.calibration) on known score sets, its file, and
its place in the decision rule and the SR's probability."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ecg_dicom.model.calibration import Calibration, calibration_path, load_calibration
from ecg_dicom.model.decision import decide
from ecg_dicom.records import Detection
from ecg_dicom.train.calibrate import (
    brier_score,
    expected_calibration_error,
    fit_calibration,
    fit_platt,
    plot_reliability,
    reliability_bins,
)

SHA = "ab" * 32


def calibrated_set(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities drawn uniformly and outcomes drawn with exactly those probabilities."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 1, n)
    return p, (rng.uniform(0, 1, n) < p).astype(float)


def test_a_perfectly_calibrated_set_has_ece_near_zero() -> None:
    p, y = calibrated_set(20000, 0)
    assert expected_calibration_error(p, y) < 0.015
    # and a constant wrong probability has ECE = its distance from the base rate
    assert expected_calibration_error(np.full(1000, 0.9), np.r_[np.ones(500), np.zeros(500)]) == (
        pytest.approx(0.4))


def test_ece_bins_and_brier_by_hand() -> None:
    p = [0.05, 0.05, 0.95, 0.95, 1.0]
    y = [0, 1, 1, 1, 1]
    # bin 0: mean p 0.05, share 0.5 -> 0.45 x 2/5; bin 9: mean p 0.9667, share 1 -> 0.0333 x 3/5
    assert expected_calibration_error(p, y) == pytest.approx(0.45 * 0.4 + (1 - 2.9 / 3) * 0.6)
    assert brier_score([0.0, 1.0, 0.5], [0, 1, 1]) == pytest.approx(0.25 / 3)
    rows = reliability_bins(p, y)
    assert len(rows) == 10 and rows[0]["pages"] == 2 and rows[9]["pages"] == 3
    assert rows[5]["mean_probability"] is None


def test_a_miscalibrated_set_improves_and_the_map_is_monotone() -> None:
    p, y = calibrated_set(3000, 1)
    overconfident = np.where(p > 0.5, 1 - (1 - p) ** 3, p**3)  # pushed towards 0 and 1
    calibration = fit_calibration(overconfident, y, weights_sha256=SHA, fitted_on="synthetic")
    record = calibration.record
    assert record["ece_before"] > 0.08
    assert record["ece_after"] < record["ece_before"] / 2  # cross-fitted, honest
    assert record["n"] == 3000 and record["abnormal"] == int(y.sum())
    grid = np.linspace(0, 1, 501)
    for method in ("platt", "isotonic"):
        mapped = Calibration(method, _params(method, overconfident, y), SHA).apply(grid)  # type: ignore[arg-type]
        assert np.all(np.diff(mapped) >= -1e-12), method
        assert mapped.min() > 0 and mapped.max() < 1


def _params(method: str, scores: np.ndarray, y: np.ndarray) -> dict:
    from ecg_dicom.train.calibrate import fit_isotonic

    return fit_platt(scores, y) if method == "platt" else fit_isotonic(scores, y)


def test_platt_recovers_a_logistic_truth_and_is_chosen_for_it() -> None:
    rng = np.random.default_rng(2)
    z = rng.normal(0, 2, 4000)
    score = 1 / (1 + np.exp(-z))
    y = (rng.uniform(0, 1, z.size) < 1 / (1 + np.exp(-(0.5 * z + 0.3)))).astype(float)
    params = fit_platt(score, y)
    assert params["a"] == pytest.approx(0.5, abs=0.08)
    assert params["b"] == pytest.approx(0.3, abs=0.12)
    assert fit_calibration(score, y, weights_sha256=SHA).method == "platt"


def test_perfectly_separated_scores_give_finite_probabilities() -> None:
    scores = np.r_[np.zeros(50), np.ones(60)]
    y = np.r_[np.zeros(50), np.ones(60)]
    calibration = fit_calibration(scores, y, weights_sha256=SHA)
    p = calibration.apply([0.0, 1.0])
    assert 0 < p[0] < 0.1 and 0.9 < p[1] < 1


def test_json_round_trip_and_sha_mismatch_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    p, y = calibrated_set(500, 3)
    calibration = fit_calibration(p**2, y, weights_sha256=SHA, fitted_on="test")
    path = calibration.save(tmp_path / "calibration.json")
    data = json.loads(path.read_text())
    assert data["weights_sha256"] == SHA and data["method"] == calibration.method
    assert data["fitted_on"] == "test" and "ece_before" in data and "ece_after" in data
    loaded = load_calibration(path, SHA)
    assert loaded is not None and loaded.tag == calibration.tag
    grid = np.linspace(0, 1, 101)
    assert np.allclose(loaded.apply(grid), calibration.apply(grid))
    with caplog.at_level(logging.INFO, logger="ecg_dicom.detect"):
        assert load_calibration(path, "cd" * 32) is None
    assert "fitted for weights abababababab" in caplog.text and "uncalibrated" in caplog.text
    assert load_calibration(tmp_path / "none.json", SHA) is None
    (tmp_path / "bad.json").write_text('{"method": "platt", "params": {"a": -1, "b": 0}, '
                                       f'"weights_sha256": "{SHA}"}}')
    assert load_calibration(tmp_path / "bad.json", SHA) is None  # not monotone: refused
    assert calibration_path(Path("weights/ecg-yolov8m.pt")) == Path("weights/calibration.json")


def test_the_decision_states_the_calibrated_probability() -> None:
    boxes = (Detection("ECG HB", 0.6, (0, 0, 10, 10)), Detection("Normal-ECG", 0.4, (0, 0, 10, 10)))
    raw = decide(boxes, model_name="m", model_version="v")
    assert raw.abnormal_score == pytest.approx(0.6) and raw.label == "Abnormal"
    assert raw.probability == pytest.approx(0.6) and raw.calibrated is None
    assert raw.probability_kind == "uncalibrated"
    assert raw.to_dict()["calibration"] == "uncalibrated"
    # a calibration that maps 0.6 below 0.5: the label follows the calibrated probability
    shrink = Calibration("platt", {"a": 1.0, "b": -1.0}, SHA)
    called = decide(boxes, model_name="m", model_version="v", calibration=shrink)
    p = 1 / (1 + np.exp(-(np.log(0.6 / 0.4) - 1.0)))
    assert called.calibrated == pytest.approx(p) and p < 0.5
    assert called.label == "Normal" and called.class_name == "Normal-ECG"
    assert called.probability == pytest.approx(1 - p)
    assert called.abnormal_score == pytest.approx(0.6)  # the raw score is kept
    assert called.probability_kind == f"calibrated ({shrink.tag})"
    assert called.to_dict()["calibrated"] == pytest.approx(p, abs=1e-4)


def test_reliability_diagram_is_written(tmp_path: Path) -> None:
    p, y = calibrated_set(300, 4)
    out = plot_reliability(y, {"raw": p**2, "calibrated": p}, tmp_path / "r.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_detector_loads_the_calibration_beside_its_weights(tmp_path: Path) -> None:
    """The service's path: calibration.json beside the weights is applied when it was fitted
    for them, refused (uncalibrated) when it was fitted for other weights."""
    from ecg_dicom.config import ModelSettings, Settings
    from ecg_dicom.model import Detector, weights_checksum
    from ecg_dicom.pipeline import Pipeline
    from realdata import ECG_IMAGES_DIR, ROOT

    weights = tmp_path / "model.pt"
    weights.symlink_to((ROOT / "weights" / "ecg-yolov8m.pt").resolve())
    sha = weights_checksum(weights)
    settings = ModelSettings(weights=weights, sha256=sha, runtime="pytorch")
    assert Detector(settings).probability_kind == "uncalibrated"  # no file

    calibration = Calibration("platt", {"a": 0.5, "b": 0.2}, sha)
    calibration.save(tmp_path / "calibration.json")
    detector = Detector(settings)
    assert detector.probability_kind == f"calibrated ({calibration.tag})"
    pipeline = Pipeline(Settings.model_construct(model=settings), detector=detector)
    try:
        result = pipeline.read_file(sorted((ECG_IMAGES_DIR / "normal").glob("*.jpg"))[0]).result
    finally:
        pipeline.close()
    assert result.calibrated == pytest.approx(calibration(result.abnormal_score))
    assert result.probability_kind == detector.probability_kind
    assert result.straightening == "none"  # a picture: straightened (here: nothing to do)
    assert result.to_dict()["straightening"] == "none"

    Calibration("platt", {"a": 0.5, "b": 0.2}, "0" * 64).save(tmp_path / "calibration.json")
    assert Detector(settings).calibration is None  # fitted for other weights: refused


def test_sr_algorithm_parameters_say_calibration_and_straightening() -> None:
    from ecg_dicom.results.measurements import _algorithm

    boxes = (Detection("ECG HB", 0.6, (0, 0, 10, 10)),)
    calibration = Calibration("platt", {"a": 1.0, "b": 0.0}, SHA)
    result = decide(boxes, model_name="m", model_version="v", runtime="pytorch f32",
                    calibration=calibration)
    result = replace(result, straightening="rotation +7.00 deg")
    values = [item.TextValue for item in _algorithm(result)
              if item.ConceptNameCodeSequence[0].CodeValue == "111002"]
    assert values == ["runtime pytorch f32", f"probability calibrated ({calibration.tag})",
                      "straightening rotation +7.00 deg"]
    plain = decide(boxes, model_name="m", model_version="v")
    assert [item.TextValue for item in _algorithm(plain)
            if item.ConceptNameCodeSequence[0].CodeValue == "111002"] == [
        "probability uncalibrated"]
