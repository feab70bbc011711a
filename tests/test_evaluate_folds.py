"""``ecg-dicom evaluate --folds`` end to end through the CLI: two folds of real pages,
each read by its own model through the service's path; intervals, per-fold figures,
the calibration file, the cache, the robustness table and clear errors.

The fold models are the shipped weights under two names (links): the figures mean
nothing (that model saw these pages), the path is the real one, and PyTorch reads a
page in about a second here (the tiny test model takes longer to train than this
whole file, and finds no box on a real page).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecg_dicom.model import weights_checksum
from ecg_dicom.train.fold_setup import subset
from ecg_dicom.train.folds import Fold, write_folds
from ecg_dicom.train.intervals import bootstrap_auroc, wilson
from realdata import ECG_IMAGES_DIR, ROOT
from test_cli import run


@pytest.fixture(scope="module")
def folds_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    weights = (ROOT / "weights" / "ecg-yolov8m.pt").resolve()
    root = tmp_path_factory.mktemp("folds")
    folds = []
    for i in range(2):
        test = tuple(
            (name, f"{folder}/{sorted((ECG_IMAGES_DIR / folder).glob('*.jpg'))[i].name}")
            for folder, name in (("heart_block", "ECG HB"), ("normal", "Normal-ECG"))
        )
        (root / f"fold{i}.pt").symlink_to(weights)
        folds.append(Fold(index=i, test=test, weights=f"fold{i}.pt"))
    write_folds(folds, root / "folds.json", source=ECG_IMAGES_DIR, seed=0)
    return root


def test_wilson_and_bootstrap_intervals() -> None:
    low, high = wilson(73, 74)  # type: ignore[misc]
    assert low == pytest.approx(0.9273, abs=1e-3) and high == pytest.approx(0.9976, abs=1e-3)
    assert wilson(0, 0) is None and wilson(0, 5)[0] == 0.0  # type: ignore[index]
    ci = bootstrap_auroc([True, True, False, False, True], [0.9, 0.6, 0.7, 0.1, 0.8])
    assert ci is not None and 0 <= ci[0] <= ci[1] <= 1
    assert ci == bootstrap_auroc([True, True, False, False, True], [0.9, 0.6, 0.7, 0.1, 0.8])
    assert bootstrap_auroc([True, True], [0.1, 0.2]) is None
    pages = [("ECG HB", f"h{i}") for i in range(5)] + [("Normal-ECG", f"n{i}") for i in range(2)]
    picked = subset(pages, 3, seed=0)
    assert len(picked) == 5 and picked == subset(pages, 3, seed=0)


def test_folds_through_the_cli(folds_dir: Path, tmp_path: Path) -> None:
    calibration = folds_dir / "calibration.json"
    args = ("evaluate", "--folds", str(folds_dir),
            "--write-calibration", str(calibration),
            "--calibration-weights", str(folds_dir / "fold0.pt"))
    done = run(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "2-fold cross-validation, 4 pages" in out
    assert "predictions computed now: 4" in out
    for line in ("Normal/Abnormal accuracy", "sensitivity (Abnormal)", "specificity (Normal)",
                 "AUROC (raw score)", "4-class accuracy", "fold 0", "fold 1",
                 "ECE (10 bins) raw", "Brier raw"):
        assert line in out, line
    report = json.loads((folds_dir / "report.json").read_text())
    assert report["out_of_fold"]["pages"] == 4
    assert report["out_of_fold"]["intervals"]["accuracy"]["ci95"] is not None
    assert [f["pages"] for f in report["per_fold"]] == [2, 2]
    assert {p["fold"] for p in report["predictions"]} == {0, 1}
    saved = json.loads(calibration.read_text())
    assert saved["weights_sha256"] == weights_checksum(folds_dir / "fold0.pt")
    assert saved["method"] in ("platt", "isotonic") and saved["n"] == 4
    assert (folds_dir / "reliability.png").read_bytes()[:4] == b"\x89PNG"
    # the second run reads the cache: nothing computed
    again = run("evaluate", "--folds", str(folds_dir), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "predictions computed now: 0" in again.stdout


def test_perturb_and_dicom_through_the_cli(folds_dir: Path, tmp_path: Path) -> None:
    done = run("evaluate", "--folds", str(folds_dir), "--perturb",
               "--pages-per-class", "1", "--dicom", "pydicom-example", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    rob = report["robustness"]
    assert rob["pages"] == 2 and "1 pages per class" in rob["selection"]
    assert [r["condition"] for r in rob["conditions"]] == [
        "tilt 0°", "tilt 3°", "tilt 5°", "tilt 7°", "tilt 10°", "perspective 0.06", "photo"]
    clean = rob["conditions"][0]
    assert clean["unchanged"]["value"] == 1.0  # the clean page is its own reference
    assert report["computed"] == 2 * 6 + 0  # six perturbed reads per page; clean cached
    # what each fold model says about pydicom's example ECG (no truth label)
    assert [row["weights"] for row in report["dicom"]] == ["fold0.pt", "fold1.pt"]
    for row in report["dicom"]:
        assert row["file"].endswith("waveform_ecg.dcm")
        assert row["label"] in ("Normal", "Abnormal", "Not interpretable")


def test_clear_errors(folds_dir: Path, tmp_path: Path) -> None:
    done = run("evaluate", "--folds", str(folds_dir) + "-typo", cwd=tmp_path)
    assert done.returncode == 1 and "folds folder" in done.stderr
    assert "-typo not found" in done.stderr
    done = run("evaluate", "--folds", str(folds_dir), "--data", str(tmp_path / "nopages"),
               cwd=tmp_path)
    assert done.returncode == 1 and "page folder" in done.stderr and "nopages" in done.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    record = json.loads((folds_dir / "folds.json").read_text())
    record["folds"][1]["weights"] = "fold1-typo.pt"
    (broken / "folds.json").write_text(json.dumps(record))
    (broken / "fold0.pt").symlink_to(folds_dir / "fold0.pt")
    done = run("evaluate", "--folds", str(broken), cwd=tmp_path)
    assert done.returncode == 1 and "weights of fold 1" in done.stderr
    assert "fold1-typo.pt" in done.stderr
    done = run("evaluate", "--write-calibration", "x.json", "--data", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2 and "need --folds" in done.stderr
    done = run("evaluate", "--folds", str(folds_dir), "--write-calibration", "x.json",
               cwd=tmp_path)
    assert done.returncode == 1 and "--calibration-weights" in done.stderr
