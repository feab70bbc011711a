"""Cross-validated training of the shipped YOLOv8m on a lent GPU, in one fixed budget.

Issue 14: the model card's figures come from stratified 5-fold cross-validation on
all 371 pages, and the shipped checkpoint is chosen by a rule fixed before any test
fold is looked at.  **The rule (fixed in advance):** every run trains from the model
yaml (no pretrained weights, none of v0.1's) with the same recipe and the same time
budget, and its checkpoint is ``last.pt`` at the end of that budget (ultralytics'
``time=`` anneals the learning rate to the budget).  No checkpoint is ranked on any
page: each run's "validation" split is 8 of its own training pages (ultralytics
needs one), so a test fold is never seen during training or selection.  The five
fold models give one out-of-fold prediction per page (``ecg-dicom evaluate
--folds``); the sixth run, on all 371 pages, is the shipped model, and the fold
figures are the estimate of how that recipe does on pages it has not seen.

Three modes:

``prepare`` (here, with the project installed)
    the folds (:func:`ecg_dicom.train.folds.make_folds`, k=5, seed 0) and every page
    shrunk to the training width with area averaging (as the service shrinks pages),
    with its chart-frame box; written to ``--out`` (``pages/``, ``labels/``,
    ``folds.json``) to travel to the GPU machine.
``train`` (on the GPU machine: PyTorch, OpenCV, NumPy; ultralytics carried as wheels)
    six runs at the same time on the one GPU (fold0..fold4 and ``final``), the robust
    augmentation of :mod:`ecg_dicom.train.augment` (loaded by its path: no project
    install there), class balance by repeating pages of small classes; then every
    ``last.pt`` stripped (fp16) and cut into pieces under 16 MiB in ``--keep``, the
    final model's pieces and a summary in ``--out``.
``fetch RUN``
    copies the pieces of one run from ``--keep`` to ``--out`` (one model per call:
    what comes back from the machine is limited to 64 MiB a call).

Usage::

    .venv/bin/python scripts/train_folds_gpu.py prepare --source ../shared/data/ecg-images \
        --out runs/gpu/folds832
    # on the GPU machine (from the repository root):
    python3 scripts/train_folds_gpu.py train --data runs/gpu/folds832 --hours 0.115 --out "$OUT"
    python3 scripts/train_folds_gpu.py fetch fold0 --out "$OUT"

Join a model with ``cat final.pt.part-* > final.pt``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PIECE_BYTES = 15 * 2**20
CLASS_NAMES = ("ECG HB", "History_MI", "MI-ECG", "Normal-ECG")
#: Training pages each run uses as ultralytics' (unused) validation split.
VAL_FROM_TRAIN = 8


def _load(relpath: str, name: str) -> ModuleType:
    """A project module loaded from its file (no package import, no project install)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / relpath)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- prepare
def prepare(args: argparse.Namespace) -> int:
    import cv2

    from ecg_dicom.train.dataset import find_chart_frame, resize_to_width, yolo_label
    from ecg_dicom.train.folds import make_folds, write_folds

    source, out = Path(args.source), Path(args.out)
    folds = make_folds(source, k=args.k, seed=args.seed)
    (out / "pages").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    for fold in folds:
        for class_name, rel in fold.test:
            image = cv2.imread(str(source / rel), cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError(f"{source / rel} is not an image OpenCV can read")
            h, w = image.shape[:2]
            x0, y0, x1, y1 = find_chart_frame(image)
            small = resize_to_width(image, args.width)
            stem = Path(rel).stem
            cv2.imwrite(str(out / "pages" / f"{stem}.jpg"), small,
                        [cv2.IMWRITE_JPEG_QUALITY, 90])
            # the box in relative coordinates does not change with the width
            (out / "labels" / f"{stem}.txt").write_text(
                yolo_label(CLASS_NAMES.index(class_name), (x0, y0, x1, y1), w, h) + "\n",
                encoding="utf-8")
    write_folds(folds, out / "folds.json", source=source, seed=args.seed)
    print(f"{sum(len(f.test) for f in folds)} pages in {len(folds)} folds -> {out}")
    return 0


# --------------------------------------------------------------------------- train
def _run_dataset(data: Path, work: Path, name: str, test: set[str], seed: int) -> Path:
    """A run's dataset: its training pages (all but ``test``), listed class-balanced."""
    root = work / name
    stems = sorted(p.stem for p in (data / "pages").glob("*.jpg") if p.stem not in test)
    by_class: dict[int, list[Path]] = {}
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    val = set(rng.sample(stems, VAL_FROM_TRAIN))
    for stem in stems:
        for split in ("train", "val") if stem in val else ("train",):
            link = root / "images" / split / f"{stem}.jpg"
            if not link.exists():
                link.symlink_to((data / "pages" / f"{stem}.jpg").resolve())
            shutil.copy(data / "labels" / f"{stem}.txt", root / "labels" / split / f"{stem}.txt")
        cls = int((data / "labels" / f"{stem}.txt").read_text().split()[0])
        by_class.setdefault(cls, []).append(root / "images" / "train" / f"{stem}.jpg")
    largest = max(len(v) for v in by_class.values())
    entries: list[Path] = []
    counts = {}
    for cls, members in sorted(by_class.items()):
        repeat, extra = divmod(largest, len(members))
        chosen = members * repeat + rng.sample(members, extra)
        entries += chosen
        counts[CLASS_NAMES[cls]] = [len(members), len(chosen)]
    rng.shuffle(entries)
    (root / "train_balanced.txt").write_text("".join(f"{p}\n" for p in entries))
    import yaml

    meta = {"path": str(root), "train": str(root / "train_balanced.txt"), "val": "images/val",
            "names": dict(enumerate(CLASS_NAMES))}
    (root / "data.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    (root / "counts.json").write_text(json.dumps({"pages_and_entries": counts,
                                                  "test_pages": len(test)}))
    return root / "data.yaml"


def _worker(args: argparse.Namespace) -> int:
    """One training run (a subprocess of ``train``)."""
    offline = _load("src/ecg_dicom/model/offline.py", "ecg_offline")
    augment = _load("src/ecg_dicom/train/augment.py", "ecg_augment")
    offline.prepare_offline(args.threads)
    # the same two ultralytics patches as v0.1's GPU run (AMP self-check, polars)
    _load("scripts/train_gpu.py", "ecg_train_gpu")._patch_ultralytics_offline()
    augment.install()
    from ultralytics import YOLO

    train_args: dict[str, Any] = {
        "data": args.data_yaml, "imgsz": args.imgsz, "epochs": 300, "time": args.hours,
        "batch": args.batch, "device": args.device, "workers": args.workers, "seed": 0,
        "deterministic": False, "cache": "ram", "project": str(Path(args.project).resolve()),
        "name": args.name, "exist_ok": True, "pretrained": False, "patience": 10_000,
        "warmup_epochs": 3.0, "plots": False, "val": False, "amp": True,
        "optimizer": "AdamW", "lr0": 0.00125, "nbs": args.batch,
        # never an ECG that no cart prints: no mosaic, mixup, copy-paste, flips, erasing
        "mosaic": 0.0, "close_mosaic": 0, "mixup": 0.0, "cutmix": 0.0, "copy_paste": 0.0,
        "fliplr": 0.0, "flipud": 0.0, "erasing": 0.0,
        **augment.ROBUST_GEOMETRY,
    }
    started = time.time()
    model = YOLO(args.model)
    model.train(**train_args)
    trainer = model.trainer
    record = {"args": train_args, "wall_seconds": round(time.time() - started, 1),
              "epochs_completed": int(getattr(trainer, "epoch", -1)) + 1,
              "photo_p": augment.PHOTO_P}
    import torch

    record["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    record["torch"] = torch.__version__
    import ultralytics

    record["ultralytics"] = ultralytics.__version__
    run = Path(args.project) / args.name
    (run / "run-record.json").write_text(json.dumps(record, indent=1))
    print(json.dumps(record), flush=True)
    return 0


def _pieces(weights: Path, folder: Path, name: str) -> list[str]:
    data = weights.read_bytes()
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(0, len(data), PIECE_BYTES):
        piece = folder / f"{name}.pt.part-{i // PIECE_BYTES:02d}"
        piece.write_bytes(data[i: i + PIECE_BYTES])
        names.append(piece.name)
    return names


def train(args: argparse.Namespace) -> int:
    started = time.time()
    data = Path(args.data).resolve()
    work = Path(args.project).resolve()
    out, keep = Path(args.out), Path(args.keep)
    out.mkdir(parents=True, exist_ok=True)
    folds = json.loads((data / "folds.json").read_text())["folds"]
    runs: dict[str, set[str]] = {
        f"fold{f['fold']}": {Path(rel).stem for _, rel in f["test"]} for f in folds
    }
    runs["final"] = set()
    if args.only:
        runs = {k: v for k, v in runs.items() if k in args.only.split(",")}
    procs, logs = {}, {}
    for name, test in runs.items():
        yaml_path = _run_dataset(data, work / "data", name, test, seed=0)
        logs[name] = work / f"{name}.log"
        env = dict(os.environ, YOLO_CONFIG_DIR=str(work / f"cfg-{name}"), PYTHONUNBUFFERED="1")
        procs[name] = subprocess.Popen(
            [sys.executable, __file__, "worker", "--data-yaml", str(yaml_path),
             "--imgsz", str(args.imgsz), "--hours", str(args.hours), "--batch", str(args.batch),
             "--workers", str(args.workers), "--threads", str(args.threads),
             "--device", args.device, "--project", str(work), "--name", name,
             "--model", args.model],
            stdout=logs[name].open("wb"), stderr=subprocess.STDOUT, env=env)
    print(f"{len(procs)} runs started after {time.time() - started:.0f} s", flush=True)
    deadline = time.time() + args.hours * 3600 + args.grace
    for name, proc in procs.items():
        try:
            proc.wait(timeout=max(deadline - time.time(), 1))
        except subprocess.TimeoutExpired:
            print(f"{name}: past the deadline, stopped", flush=True)
            proc.kill()
            proc.wait()
        print(f"{name}: exit {proc.returncode} at {time.time() - started:.0f} s", flush=True)

    from ultralytics.utils.torch_utils import strip_optimizer

    summary: dict[str, Any] = {"rule": "last.pt of every run at the end of its time budget",
                               "runs": {}}
    for name in runs:
        run = work / name
        last = run / "weights" / "last.pt"
        entry: dict[str, Any] = {"log_tail": logs[name].read_text(errors="replace")[-3000:]}
        record = run / "run-record.json"
        if record.exists():
            entry["record"] = json.loads(record.read_text())
        results = run / "results.csv"
        if results.exists():
            entry["results_csv"] = results.read_text()
        if last.exists():
            stripped = work / f"{name}.pt"
            strip_optimizer(str(last), s=str(stripped))
            entry["pieces"] = _pieces(stripped, keep / name, name)
            entry["bytes"] = stripped.stat().st_size
        summary["runs"][name] = entry
        print(name, {k: v for k, v in entry.items() if k not in {"log_tail", "results_csv"}},
              flush=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    if "final" in runs and (keep / "final").is_dir():
        for piece in sorted((keep / "final").iterdir()):
            shutil.copy(piece, out / piece.name)
    print(f"done in {time.time() - started:.0f} s", flush=True)
    return 0 if all("pieces" in e for e in summary["runs"].values()) else 1


def fetch(args: argparse.Namespace) -> int:
    folder = Path(args.keep) / args.run
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for piece in sorted(folder.iterdir()):
        shutil.copy(piece, out / piece.name)
        print(piece.name, piece.stat().st_size)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["prepare", "train", "worker", "fetch"])
    parser.add_argument("run", nargs="?", help="fetch: the run whose model to copy")
    parser.add_argument("--source", default="../shared/data/ecg-images")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--data", default="runs/gpu/folds832")
    parser.add_argument("--data-yaml", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="yolov8m.yaml")
    parser.add_argument("--imgsz", type=int, default=832)
    parser.add_argument("--hours", type=float, default=0.115, help="time budget of each run")
    parser.add_argument("--grace", type=float, default=60.0)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="0")
    parser.add_argument("--only", default="", help="comma-separated runs (a dry run here)")
    parser.add_argument("--project", default="/tmp/ecg-folds")
    parser.add_argument("--keep", default="/tmp/ecg-folds-keep")
    parser.add_argument("--name", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="runs/gpu/out")
    args = parser.parse_args()
    modes = {"prepare": prepare, "train": train, "worker": _worker, "fetch": fetch}
    return modes[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
