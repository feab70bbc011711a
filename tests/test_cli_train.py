"""Retraining as a hospital does it, around the CLI: ``dataset build`` shows progress,
``train`` leaves weights the service accepts (their ``.sha256``) and the list of its
training pages, ``evaluate`` warns when it is given those pages and calls class
folders no split.  The shipped weights carry the list of theirs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ecg_dicom.config import ModelSettings
from ecg_dicom.model import verify_weights
from ecg_dicom.train.dataset import FOLDER_CLASSES, build_dataset
from ecg_dicom.train.seen import RECORD_NAME, seen_in_training, write_training_record
from ecg_dicom.train.training import write_checksums
from realdata import ECG_IMAGES_DIR, ROOT
from test_cli import on_terminal, run

SHIPPED = ROOT / "weights"


def real_pages(per_class: int) -> dict[str, list[Path]]:
    return {folder: sorted((ECG_IMAGES_DIR / folder).glob("*.jpg"))[:per_class]
            for folder in FOLDER_CLASSES}


def class_folders(root: Path, pages: dict[str, list[Path]]) -> Path:
    for folder, files in pages.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for page in files:
            (root / folder / page.name).write_bytes(page.read_bytes())
    return root


def test_checksums_written_by_train_are_what_the_service_verifies(tmp_path: Path) -> None:
    weights = tmp_path / "run" / "weights"
    weights.mkdir(parents=True)
    (weights / "best.pt").write_bytes(os.urandom(4096))
    (weights / "last.pt").write_bytes(os.urandom(4096))
    sums = write_checksums(weights)
    assert set(sums) == {"best.pt", "last.pt"}
    for name, checksum in sums.items():
        assert (weights / f"{name}.sha256").read_text() == f"{checksum}  {name}\n"
        assert verify_weights(ModelSettings(weights=weights / name)) == checksum


def test_training_record_lists_the_training_split(tmp_path: Path) -> None:
    source = class_folders(tmp_path / "src", real_pages(3))
    summary = build_dataset(source, tmp_path / "ds", val_fraction=0.34, seed=0)
    split = json.loads((tmp_path / "ds" / "split.json").read_text())
    record_path = write_training_record(tmp_path / "run", summary.data_yaml,
                                        weights_sha256=["abc"])
    record = json.loads(record_path.read_text())
    assert sorted(p["name"] for p in record["pages"]) == sorted(
        Path(i["file"]).name for i in split["train"])
    trained = [Path(i["file"]) for i in split["train"]]
    held_out = [Path(i["file"]) for i in split["val"]]
    weights = tmp_path / "run" / "weights" / "best.pt"
    found, seen = seen_in_training(weights, "abc", trained + held_out)
    assert found == tmp_path / "run" / RECORD_NAME and seen == set(trained)
    assert seen_in_training(weights, "other weights", trained) == (None, set())


def test_shipped_weights_list_their_training_pages() -> None:
    """weights/training-pages.json: the shipped weights trained on every shared page
    (their figures are the cross-validation estimates of the same recipe)."""
    record = json.loads((SHIPPED / RECORD_NAME).read_text())
    checksum = (SHIPPED / "ecg-yolov8m.pt.sha256").read_text().split()[0]
    assert record["weights_sha256"] == [checksum]
    trained = {p["name"] for p in record["pages"]}
    shared = {p.name for p in ECG_IMAGES_DIR.glob("*/*.jpg")}
    assert trained == shared


def test_evaluate_warns_about_training_pages_and_names_no_split(
    tmp_path: Path, default_model: Path
) -> None:
    """Weights whose training record lists 4 of the 6 pages given to evaluate: a warning
    naming the record, and the 2 unseen pages scored on their own."""
    pages: dict[str, list[Path]] = {
        folder: sorted((ECG_IMAGES_DIR / folder).glob("*.jpg"))[:3] for folder in ("normal", "mi")
    }
    trained = [p for files in pages.values() for p in files[:2]]
    weights = tmp_path / "model" / "ecg-yolov8m.pt"
    weights.parent.mkdir()
    weights.write_bytes((SHIPPED / "ecg-yolov8m.pt").read_bytes())
    write_checksums(weights.parent)
    listing = tmp_path / "listing"
    listing.mkdir()
    (listing / "train.txt").write_text("".join(f"{p}\n" for p in trained))
    (listing / "data.yaml").write_text(f"path: {listing}\ntrain: train.txt\n")
    checksum = (weights.parent / "ecg-yolov8m.pt.sha256").read_text().split()[0]
    write_training_record(weights.parent, listing / "data.yaml", weights_sha256=[checksum])
    data = class_folders(tmp_path / "pages", pages)
    done = run("evaluate", "--data", str(data), "--weights", str(weights), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "WARNING: 4 of the 6 pages were used to train these weights" in done.stderr
    assert "training-pages.json" in done.stderr
    assert f"evaluated on the pages of {data} (class folders)" in done.stdout
    assert "split val" not in done.stdout
    assert "not seen in training: 2 pages" in done.stdout
    report = json.loads(run("evaluate", "--data", str(data), "--weights", str(weights),
                            "--json", cwd=tmp_path).stdout)
    assert report["split"] is None and report["pages"] == 6
    assert report["training_pages"]["seen"] == 4
    assert report["training_pages"]["unseen"]["pages"] == 2


def test_dataset_build_shows_progress_on_a_terminal(tmp_path: Path) -> None:
    source = class_folders(tmp_path / "src", real_pages(2))
    built, drawn = on_terminal(["dataset", "build", str(source), str(tmp_path / "ds")],
                               cwd=tmp_path)
    assert built.returncode == 0
    assert b"dataset build 8/8 [" in drawn, drawn
    assert json.loads(built.stdout)["counts"]["train"]["Normal-ECG"] == 1
