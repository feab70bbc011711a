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
from ecg_dicom.train.dataset import build_dataset
from ecg_dicom.train.evaluate import evaluate
from ecg_dicom.train.site_int8 import calibrate_int8_on_site
from ecg_dicom.train.training import TrainConfig, train_model

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _settings_model(settings: Any) -> Any:
    """The ModelSettings inside a Settings object (or the object itself)."""
    return getattr(settings, "model", settings)


def cmd_dataset_build(args: argparse.Namespace, settings: Any) -> int:
    """Build a YOLO dataset from class folders or a Roboflow export."""
    try:
        summary = build_dataset(
            Path(args.src), Path(args.out), val_fraction=args.val_fraction, seed=args.seed,
            copy=args.copy, width=args.width,
        )
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"dataset build failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
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
    model = _settings_model(settings)
    weights = Path(args.weights or model.weights)
    if not weights.is_file():
        print(f"evaluate: weights {weights} not found", file=sys.stderr)
        return EXIT_FAILED
    try:
        report = evaluate(
            Path(args.data), weights, runtime=args.runtime or model.runtime,
            precision=args.precision or model.precision,
            imgsz=args.imgsz or model.imgsz, conf=model.conf,
            threshold=model.abnormal_threshold if args.threshold is None else args.threshold,
            threads=model.threads, plot=Path(args.plot) if args.plot else None,
            split=args.split, cache_dir=model.export_cache_dir,
        )
    except (FileNotFoundError, EcgDicomError) as exc:
        print(f"evaluate failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(format_report(report))
    return EXIT_OK


def format_report(report: dict[str, Any]) -> str:
    """A short human-readable summary of an evaluation report."""

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{100 * v:.1f} %"

    lines = [
        (f"weights {report['weights']} (sha256 {report['sha256'][:12]}), runtime "
         f"{report['runtime']} ({report.get('precision', 'f32')}), imgsz {report['imgsz']}, "
         f"threshold {report['threshold']}"),
        f"pages {report['pages']}: accuracy {pct(report['accuracy'])}, sensitivity "
        f"{pct(report['sensitivity'])}, specificity {pct(report['specificity'])}, AUROC "
        + ("n/a" if report["auroc"] is None else f"{report['auroc']:.3f}"),
    ]
    for name, row in report["per_class"].items():
        lines.append(
            f"  {name:<11} pages {row['pages']:>3}  class sensitivity {pct(row['sensitivity'])}"
            f"  Normal/Abnormal right {pct(row['binary_sensitivity'])}"
        )
    cm = report["confusion_matrix"]
    columns = ", ".join(cm["columns_true"])
    lines.append(f"confusion matrix (rows predicted, columns true: {columns})")
    for name, row in zip(cm["rows_predicted"], cm["matrix"], strict=True):
        lines.append(f"  {name:<12} " + " ".join(f"{v:>4}" for v in row))
    return "\n".join(lines)


def cmd_export(args: argparse.Namespace, settings: Any) -> int:
    """Export the verified weights to ONNX and/or OpenVINO into the export cache."""
    model = _settings_model(settings)
    if args.weights:
        model = model.model_copy(update={"weights": Path(args.weights)})
    try:
        checksum = verify_weights(model)
    except EcgDicomError as exc:
        print(f"export failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
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


def register(subparsers: Any) -> None:
    """Add ``dataset``, ``train``, ``evaluate`` and ``export`` to the main CLI's subparsers.

    Each parser gets ``func`` set (via ``set_defaults``) to a function
    ``(args, settings) -> int``.
    """
    dataset = subparsers.add_parser("dataset", help="build training datasets")
    dataset_sub = dataset.add_subparsers(dest="dataset_command", required=True)
    build = dataset_sub.add_parser(
        "build", help="class folders or a Roboflow YOLO export -> an ultralytics dataset"
    )
    build.add_argument("src", help="folder of class folders, or a Roboflow YOLO export")
    build.add_argument("out", help="where to write images/, labels/, data.yaml, split.json")
    build.add_argument("--val-fraction", type=float, default=0.2)
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--copy", action="store_true", help="copy images instead of symlinking")
    build.add_argument(
        "--width", type=int, default=None,
        help="write every page scaled to this width (area averaging, as the service "
             "shrinks pages); use the training imgsz. Default: link the originals",
    )
    build.set_defaults(func=cmd_dataset_build)

    train = subparsers.add_parser("train", help="train the detector (offline, resumable)")
    train.add_argument("--data", help="data.yaml made by 'dataset build'")
    train.add_argument("--model", default="yolov8m.yaml", help="model yaml (from scratch) or .pt")
    train.add_argument("--imgsz", type=int, default=640)
    train.add_argument("--epochs", type=int, default=100)
    train.add_argument("--time", type=float, default=0.0,
                       help="hours; fits epochs and LR schedule to this budget")
    train.add_argument("--batch", type=int, default=8)
    train.add_argument("--device", default="auto", help="auto, cpu, or a CUDA index")
    train.add_argument("--workers", type=int, default=2)
    train.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--cache", default="ram", choices=("ram", "disk", "none"))
    train.add_argument("--no-balance", action="store_true", help="do not oversample small classes")
    train.add_argument(
        "--resume", action="store_true", help="continue PROJECT/NAME/weights/last.pt"
    )
    train.add_argument("--project", default="runs/train")
    train.add_argument("--name", default="ecg")
    train.set_defaults(func=cmd_train)

    ev = subparsers.add_parser("evaluate", help="Normal/Abnormal and per-class figures")
    ev.add_argument("--data", required=True,
                    help="folder of class folders, or a built dataset (uses its split)")
    ev.add_argument("--weights", help="default: model.weights from the configuration")
    ev.add_argument("--runtime", choices=MODEL_RUNTIMES)
    ev.add_argument("--precision", choices=("auto", "f32"),
                    help="OpenVINO arithmetic (default: model.precision)")
    ev.add_argument("--imgsz", type=int)
    ev.add_argument("--threshold", type=float)
    ev.add_argument("--split", default="val", help="split of a built dataset")
    ev.add_argument("--json", action="store_true", help="print the full report as JSON")
    ev.add_argument("--plot", help="write the confusion matrix to this PNG")
    ev.set_defaults(func=cmd_evaluate)

    ex = subparsers.add_parser("export", help="derive ONNX / OpenVINO models into the cache")
    ex.add_argument("--weights", help="default: model.weights from the configuration")
    ex.add_argument("--format", default="all", choices=(*DERIVED_RUNTIMES, "all"))
    ex.add_argument("--imgsz", type=int)
    ex.add_argument(
        "--calibration", metavar="DIR",
        help="openvino-int8 only: calibrate on this site's own ECG pages (DICOM, images, PDF) "
             "instead of the built-in synthetic ones; replaces the cached int8 model",
    )
    ex.add_argument("--max-pages", type=int, default=200, help="most calibration pages read")
    ex.set_defaults(func=cmd_export)
