"""CLI subcommands of the model work: ``dataset build``, ``train``, ``evaluate``, ``export``.

The main CLI (``ecg_dicom.cli``) calls :func:`register` with its subparsers; each
handler takes ``(args, settings)`` and returns the process exit code.  torch and
ultralytics are imported by the model work itself, when it runs, so ``ecg-dicom
--help`` does not load them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ecg_dicom.config import MODEL_RUNTIMES
from ecg_dicom.errors import EcgDicomError
from ecg_dicom.model import (
    DERIVED_RUNTIMES,
    cached_export,
    input_shape,
    int8_calibration_record,
    verify_weights,
)
from ecg_dicom.train.commands_folds import Bar as _Bar
from ecg_dicom.train.commands_folds import add_fold_arguments, cmd_evaluate_folds
from ecg_dicom.train.dataset import FOLDER_CLASSES, build_dataset
from ecg_dicom.train.evaluate import evaluate, format_report, training_pages_warning
from ecg_dicom.train.site_int8 import calibrate_int8_on_site
from ecg_dicom.train.training import TrainConfig, train_model

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_MODEL = 3

_FOLDERS = "\n".join(f"      {folder + '/':<13} {name}" for folder, name in FOLDER_CLASSES.items())

TRAIN_GUIDE = f"""Retraining on your own labelled ECG pages (hours on a CPU, minutes on a GPU):

  1. Put each page image (PNG/JPEG, one printed 12-lead ECG per image) in the folder
     of its class, in one folder SRC (the names must be exactly these):
{_FOLDERS}
     Add the pages the shipped model was trained on if you have them
     (../shared/data/ecg-images in a development checkout) to keep its classes.
  2. ecg-dicom dataset build SRC DATA --width 832
     (splits each class 80/20 into train/val, seeded; DATA/split.json records it)
  3. ecg-dicom train --data DATA/data.yaml --imgsz 832 --time 8 --name mysite
     (--time: hours; a CPU run fits its epochs to it; --resume continues a run)
     Writes runs/train/mysite/weights/best.pt and last.pt, each with its .sha256,
     runs/train/mysite/training-record.json and training-pages.json.
  4. ecg-dicom evaluate --data DATA --weights runs/train/mysite/weights/best.pt
     (scores the val split with the service's own decision rule; warns when pages
     it is given were training pages)
  5. Point the service at the new weights: in the site file
       model: {{weights: /path/to/runs/train/mysite/weights/best.pt}}
     (their .sha256 must stay beside them), then `ecg-dicom export` once and restart.
"""


def _settings_model(settings: Any) -> Any:
    """The ModelSettings inside a Settings object (or the object itself)."""
    return getattr(settings, "model", settings)


def cmd_dataset_build(args: argparse.Namespace, settings: Any) -> int:
    """Build a YOLO dataset from class folders or a Roboflow export."""
    bar = _Bar("dataset build")
    try:
        summary = build_dataset(
            Path(args.src), Path(args.out), val_fraction=args.val_fraction, seed=args.seed,
            copy=args.copy, width=args.width, progress=bar,
        )
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"dataset build failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        bar.close()
    print(json.dumps(summary.to_dict(), indent=1))
    return EXIT_OK


def cmd_train(args: argparse.Namespace, settings: Any) -> int:
    """Train (or resume) a detector; prints the training record."""
    if not args.resume and not args.data:
        print("train needs --data DATA_YAML (or --resume)", file=sys.stderr)
        return EXIT_USAGE
    config = TrainConfig(
        data=Path(args.data or "."), model=args.model, imgsz=args.imgsz, epochs=args.epochs,
        time_hours=args.time, batch=args.batch, device=args.device, workers=args.workers,
        threads=args.threads, seed=args.seed, balance=not args.no_balance,
        project=Path(args.project), name=args.name,
        cache=False if args.cache == "none" else args.cache,
    )
    try:
        record = train_model(config, resume=args.resume)
    except FileNotFoundError as exc:
        print(f"train failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(record, indent=1, default=str))
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace, settings: Any) -> int:
    """Evaluate weights on labelled pages with the service's decision rule."""
    if args.folds or args.perturb:
        return cmd_evaluate_folds(args, settings)
    fold_only = [flag for flag, value in (
        ("--write-calibration", args.write_calibration), ("--dicom", args.dicom),
        ("--pages-per-class", args.pages_per_class)) if value]
    if fold_only:
        print(f"evaluate: {', '.join(fold_only)} need --folds (or --perturb)", file=sys.stderr)
        return EXIT_USAGE
    if not args.data:
        print("evaluate needs --data (or --folds DIR)", file=sys.stderr)
        return EXIT_USAGE
    model = _settings_model(settings)
    weights = Path(args.weights or model.weights)
    if not weights.is_file():
        print(f"evaluate: weights {weights} not found", file=sys.stderr)
        return EXIT_MODEL
    bar = _Bar("evaluate")
    try:
        report = evaluate(
            Path(args.data), weights, runtime=args.runtime or model.runtime,
            precision=args.precision or model.precision,
            imgsz=args.imgsz or model.imgsz, conf=model.conf,
            threshold=model.abnormal_threshold if args.threshold is None else args.threshold,
            threads=model.threads, plot=Path(args.plot) if args.plot else None,
            split=args.split, cache_dir=model.export_cache_dir, progress=bar,
        )
    except (FileNotFoundError, EcgDicomError) as exc:
        print(f"evaluate failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        bar.close()
    warning = training_pages_warning(report)
    if warning:
        print(warning, file=sys.stderr)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(format_report(report))
    return EXIT_OK


def cmd_export(args: argparse.Namespace, settings: Any) -> int:
    """Export the verified weights to ONNX and/or OpenVINO into the export cache."""
    model = _settings_model(settings)
    if args.weights:
        model = model.model_copy(update={"weights": Path(args.weights)})
    try:
        checksum = verify_weights(model)
    except EcgDicomError as exc:
        print(f"export failed: {exc}", file=sys.stderr)
        return EXIT_MODEL
    formats = DERIVED_RUNTIMES if args.format == "all" else (args.format,)
    imgsz = args.imgsz or model.imgsz
    if args.calibration:
        if args.format != "openvino-int8":
            print("export failed: --calibration applies to --format openvino-int8", file=sys.stderr)
            return EXIT_FAILED
        try:
            path = calibrate_int8_on_site(
                Path(model.weights), checksum, input_shape(imgsz), model.export_cache_dir,
                Path(args.calibration), max_pages=args.max_pages,
            )
        except (ValueError, OSError) as exc:
            print(f"export failed: {exc}", file=sys.stderr)
            return EXIT_FAILED
        record = int8_calibration_record(path)
        print(
            f"openvino-int8: {path} "
            f"(calibrated on {record['pages']} pages of {record['source']})"
        )
        return EXIT_OK
    for fmt in formats:
        path = cached_export(
            Path(model.weights), checksum, fmt, input_shape(imgsz), model.export_cache_dir
        )
        print(f"{fmt}: {path}")
    return EXIT_OK


def register(subparsers: Any, epilog: str = "") -> None:
    """Add ``dataset``, ``train``, ``evaluate`` and ``export`` to the main CLI's subparsers.

    Each parser gets ``func`` set (via ``set_defaults``) to a function
    ``(args, settings) -> int``; ``epilog`` (the exit statuses) ends each help.
    """
    raw = argparse.RawDescriptionHelpFormatter

    def add(parent: Any, name: str, help: str, guide: str = "") -> Any:
        text = "\n\n".join(t for t in (guide, epilog) if t)
        return parent.add_parser(name, help=help, description=help, epilog=text,
                                 formatter_class=raw)

    dataset = add(subparsers, "dataset", "build training datasets (see `train --help`)")
    dataset_sub = dataset.add_subparsers(dest="dataset_command", required=True, metavar="build")
    build = add(dataset_sub, "build",
                "class folders or a Roboflow YOLO export -> an ultralytics dataset",
                "Class folders: " + ", ".join(f"{f}/ ({n})" for f, n in FOLDER_CLASSES.items())
                + ". A progress bar is drawn on stderr when it is a terminal.")
    build.add_argument("src", help="folder of class folders, or a Roboflow YOLO export")
    build.add_argument("out", help="where to write images/, labels/, data.yaml, split.json")
    build.add_argument("--val-fraction", type=float, default=0.2,
                       help="share of each class kept for validation (default 0.2)")
    build.add_argument("--seed", type=int, default=0,
                       help="seed of the split (the same seed gives the same split)")
    build.add_argument("--copy", action="store_true", help="copy images instead of symlinking")
    build.add_argument(
        "--width", type=int, default=None,
        help="write every page scaled to this width (area averaging, as the service "
             "shrinks pages); use the training imgsz. Default: link the originals",
    )
    build.set_defaults(func=cmd_dataset_build)

    train = add(subparsers, "train", "train the detector (offline, resumable)", TRAIN_GUIDE)
    train.add_argument("--data", metavar="DATA_YAML", help="data.yaml made by 'dataset build'")
    train.add_argument("--model", default="yolov8m.yaml",
                       help="model yaml (from scratch, default yolov8m.yaml) or a .pt to "
                            "start from (e.g. the shipped weights)")
    train.add_argument("--imgsz", type=int, default=640,
                       help="network input width in px (the shipped model: 832)")
    train.add_argument("--epochs", type=int, default=100, help="epochs (default 100)")
    train.add_argument("--time", type=float, default=0.0,
                       help="hours; fits epochs and LR schedule to this budget")
    train.add_argument("--batch", type=int, default=8, help="images per batch (default 8)")
    train.add_argument("--device", default="auto", help="auto, cpu, or a CUDA index")
    train.add_argument("--workers", type=int, default=2, help="data loader processes")
    train.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    train.add_argument("--seed", type=int, default=0, help="training seed")
    train.add_argument("--cache", default="ram", choices=("ram", "disk", "none"),
                       help="where decoded images are cached (default ram)")
    train.add_argument("--no-balance", action="store_true", help="do not oversample small classes")
    train.add_argument(
        "--resume", action="store_true", help="continue PROJECT/NAME/weights/last.pt"
    )
    train.add_argument("--project", default="runs/train",
                       help="folder of the runs (default runs/train, in the working folder)")
    train.add_argument("--name", default="ecg", help="name of this run (its folder)")
    train.set_defaults(func=cmd_train)

    ev = add(subparsers, "evaluate", "Normal/Abnormal and per-class figures",
             "A progress bar is drawn on stderr when it is a terminal. Pages the weights "
             "were trained on (their training-pages.json) are counted and warned about.")
    ev.add_argument("--data",
                    help="folder of class folders, or a built dataset (uses its split); "
                         "with --folds: where the pages are (default: the source folds.json "
                         "names)")
    add_fold_arguments(ev)
    ev.add_argument("--weights", help="default: model.weights from the configuration")
    ev.add_argument("--runtime", choices=MODEL_RUNTIMES,
                    help="default: model.runtime (with --folds / --perturb: pytorch)")
    ev.add_argument("--precision", choices=("auto", "f32"),
                    help="OpenVINO arithmetic (default: model.precision)")
    ev.add_argument("--imgsz", type=int, help="default: model.imgsz")
    ev.add_argument("--threshold", type=float, help="default: model.abnormal_threshold")
    ev.add_argument("--split", default="val",
                    help="split of a built dataset (default val; ignored for class folders)")
    ev.add_argument("--json", action="store_true", help="print the full report as JSON")
    ev.add_argument("--plot", metavar="PNG", help="write the confusion matrix to this PNG")
    ev.set_defaults(func=cmd_evaluate)

    ex = add(subparsers, "export", "derive ONNX / OpenVINO models into the cache")
    ex.add_argument("--weights", help="default: model.weights from the configuration")
    ex.add_argument("--format", default="all", choices=(*DERIVED_RUNTIMES, "all"),
                    help="which derived model (default all)")
    ex.add_argument("--imgsz", type=int, help="default: model.imgsz")
    ex.add_argument(
        "--calibration", metavar="DIR",
        help="openvino-int8 only: calibrate on this site's own ECG pages (DICOM, images, PDF) "
             "instead of the built-in synthetic ones; replaces the cached int8 model",
    )
    ex.add_argument("--max-pages", type=int, default=200, help="most calibration pages read")
    ex.set_defaults(func=cmd_export)
