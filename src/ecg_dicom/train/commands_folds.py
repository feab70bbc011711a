"""``ecg-dicom evaluate --folds DIR`` / ``--perturb``: the CLI side of
:mod:`ecg_dicom.train.crossval` (docs/evaluation.md).

:func:`add_fold_arguments` adds the options to ``evaluate``'s parser;
:func:`cmd_evaluate_folds` runs them (``evaluate`` hands over when ``--folds`` or
``--perturb`` is given).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ecg_dicom.errors import EcgDicomError
from ecg_dicom.progress import Progress
from ecg_dicom.train.crossval import evaluate_folds, single_model_setup
from ecg_dicom.train.crossval_text import format_folds_report
from ecg_dicom.train.evaluate import split_of

EXIT_OK = 0
EXIT_FAILED = 1


class Bar:
    """``progress(done, total)`` for the library functions, drawn as a Progress bar
    (on a terminal); shared by the model work's commands."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.bar: Progress | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = Progress(self.what, total).__enter__()
        self.bar.advance(done - self.bar.done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.clear()


def add_fold_arguments(ev: Any) -> None:
    """``--folds``, ``--perturb`` and their options on ``evaluate``'s parser."""
    ev.add_argument("--folds", metavar="DIR",
                    help="k-fold cross-validation: DIR holds folds.json and the fold models; "
                         "each scores its own test pages (out-of-fold), with 95 %% intervals, "
                         "per-fold figures and the probability calibration (docs/evaluation.md)")
    ev.add_argument("--perturb", action="store_true",
                    help="robustness table: every page tilted 0/3/5/7/10 degrees, in "
                         "perspective and as a photo (with --folds, or --data and --weights)")
    ev.add_argument("--pages-per-class", type=int, metavar="N",
                    help="--perturb on N pages of each class, drawn with --seed (default all)")
    ev.add_argument("--seed", type=int, default=0,
                    help="seed of the perturbations and the page subset (default 0)")
    ev.add_argument("--write-calibration", metavar="JSON",
                    help="with --folds: save the calibration fitted on the out-of-fold scores "
                         "(weights/calibration.json is what the service loads)")
    ev.add_argument("--calibration-weights", metavar="PT",
                    help="the weights the written calibration belongs to (its sha256 is "
                         "recorded; the service ignores it for any other weights)")
    ev.add_argument("--reliability", metavar="PNG",
                    help="reliability diagram (default DIR/reliability.png with --folds)")
    ev.add_argument("--dicom", action="append", metavar="PATH",
                    help="also list what the models say about these DICOM ECGs (files, "
                         "folders, or pydicom-example); repeatable")
    ev.add_argument("--out", metavar="DIR",
                    help="--perturb without --folds: where predictions.json and report.json "
                         "go (default runs/evaluate/<weights>-<data>)")


def _dicom_paths(items: list[str]) -> list[Path]:
    """``--dicom`` arguments: files, folders (their ``*/ecg.dcm`` and ``*.dcm``), or
    ``pydicom-example`` (pydicom's own 12-lead example, ``waveform_ecg.dcm``)."""
    paths: list[Path] = []
    for item in items:
        if item == "pydicom-example":
            from pydicom import examples

            paths.append(Path(examples.get_path("waveform")))
            continue
        path = Path(item)
        if path.is_dir():
            found = sorted(path.glob("*/ecg.dcm")) + sorted(path.glob("*.dcm"))
            if not found:
                raise FileNotFoundError(f"--dicom {path}: no .dcm files in it")
            paths += found
        elif path.is_file():
            paths.append(path)
        else:
            raise FileNotFoundError(f"--dicom {path} not found")
    return paths


def cmd_evaluate_folds(args: argparse.Namespace, settings: Any) -> int:
    """``evaluate --folds DIR`` (and ``--perturb`` with ``--data``/``--weights``)."""
    model = getattr(settings, "model", settings)
    bar = Bar("evaluate")
    try:
        dicom = _dicom_paths(args.dicom or [])
        setup = None
        if not args.folds:
            if args.data and split_of(Path(args.data)):
                raise ValueError("--perturb without --folds needs a folder of class folders")
            weights = Path(args.weights or model.weights)
            setup = single_model_setup(
                Path(args.data), weights,
                Path(args.out or f"runs/evaluate/{weights.stem}-{Path(args.data).name}"),
            )
        report = evaluate_folds(
            Path(args.folds or setup.folds_dir),  # type: ignore[union-attr]
            data=Path(args.data) if args.data and args.folds else None,
            runtime=args.runtime or "pytorch",
            precision=args.precision or model.precision,
            imgsz=args.imgsz or model.imgsz, conf=model.conf,
            threshold=model.abnormal_threshold if args.threshold is None else args.threshold,
            threads=model.threads, cache_dir=model.export_cache_dir,
            perturb=args.perturb, pages_per_class=args.pages_per_class, seed=args.seed,
            calibration_weights=Path(args.calibration_weights)
            if args.calibration_weights else None,
            write_calibration=Path(args.write_calibration) if args.write_calibration else None,
            reliability=Path(args.reliability) if args.reliability else (
                Path(args.folds) / "reliability.png" if args.folds else None),
            dicom=dicom, progress=bar, setup=setup,
        )
    except (FileNotFoundError, ValueError, EcgDicomError) as exc:
        print(f"evaluate failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        bar.close()
    if args.json:
        print(json.dumps(report, indent=1, default=str))
    else:
        print(format_folds_report(report))
    return EXIT_OK
