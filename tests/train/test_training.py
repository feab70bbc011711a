"""Training (train.training): ECG-safe arguments, the one device rule, and a tiny run.

The tiny run (YOLOv8n from its yaml, 64 px, one epoch on synthetic pages) trains,
so it is ``slow``; the argument tests need no model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_dataset import write_folders

from ecg_dicom.train.dataset import build_dataset
from ecg_dicom.train.training import ECG_AUGMENTATION, TrainConfig, train_model

FOLDERS = ("heart_block", "history_mi", "mi", "normal")


def test_ultralytics_args_are_ecg_safe(tmp_path: Path) -> None:
    config = TrainConfig(data=tmp_path / "data.yaml", device="cpu", seed=3)
    args = config.ultralytics_args(tmp_path / "data.yaml")
    assert args["device"] == "cpu" and args["seed"] == 3 and args["deterministic"] is True
    assert args["pretrained"] is False
    # never an ECG no cart prints (mirrored, tiled, erased); tilt and keystone within what
    # phones and scanners do (issue 14: train.augment.ROBUST_GEOMETRY)
    for name in ("mosaic", "mixup", "cutmix", "copy_paste", "fliplr", "flipud", "erasing"):
        assert args[name] == 0.0, name
    assert 0 < args["degrees"] <= 10 and 0 < args["perspective"] <= 0.001
    assert {k: args[k] for k in ECG_AUGMENTATION} == ECG_AUGMENTATION
    assert "time" not in args
    timed = TrainConfig(data=tmp_path / "d.yaml", device="cpu", time_hours=0.1)
    assert timed.ultralytics_args(tmp_path / "d.yaml")["time"] == 0.1


@pytest.mark.parametrize(
    ("device", "cuda", "expected"),
    [("auto", False, "cpu"), ("auto", True, "cuda:0"), ("cpu", True, "cpu"), ("1", True, "cuda:1")],
)
def test_training_device_is_the_runtimes_rule(
    monkeypatch: pytest.MonkeyPatch, device: str, cuda: bool, expected: str
) -> None:
    """``train --device`` resolves as ``model.device`` does (model.runtimes.torch_device)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert TrainConfig(data=Path("d.yaml"), device=device).resolved_device() == expected


def test_resume_without_a_last_checkpoint_is_refused(tmp_path: Path) -> None:
    config = TrainConfig(data=tmp_path / "d.yaml", project=tmp_path / "runs", name="none")
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        train_model(config, resume=True)


@pytest.mark.slow
def test_tiny_training_run_writes_its_record(tmp_path: Path) -> None:
    write_folders(tmp_path / "src", dict.fromkeys(FOLDERS, 3))
    summary = build_dataset(tmp_path / "src", tmp_path / "ds", val_fraction=0.34, seed=0)
    record = train_model(TrainConfig(
        data=summary.data_yaml, model="yolov8n.yaml", imgsz=64, epochs=1, batch=4,
        device="cpu", workers=0, threads=2, cache=False, project=tmp_path / "runs", name="t",
        extra={"val": False, "amp": False},
    ))
    assert record["epochs_completed"] == 1
    assert Path(record["last"]).is_file()
    assert record["ultralytics_args"]["device"] == "cpu"
    assert record["ultralytics_args"]["mosaic"] == 0.0
    assert record["hardware"]["torch"]
    # The balanced list repeats the smaller classes: every class as often as the largest.
    counts = json.loads((tmp_path / "ds" / "train_balanced.json").read_text())
    assert len(set(counts.values())) == 1
    written = json.loads((tmp_path / "runs" / "t" / "training-record.json").read_text())
    assert written["epochs_completed"] == 1
