"""``ecg-dicom evaluate --folds DIR``: honest figures from k-fold cross-validation.

``DIR`` holds ``folds.json`` (:mod:`ecg_dicom.train.folds`) and the fold models it
names (``fold0.pt`` ...).  Each fold model scores **its own test pages** through the
service's path (:meth:`ecg_dicom.pipeline.Pipeline.read_file`: the page reader, with
whatever straightening it does, the detector and the decision rule), so every page
gets one *out-of-fold* prediction from a model that never saw it.  From those:

* Normal/Abnormal accuracy, sensitivity, specificity, 4-class accuracy and per-class
  sensitivity, each with a 95 % **Wilson** interval (:func:`wilson`); AUROC of the raw
  abnormal score with a 95 % **bootstrap** interval (:func:`bootstrap_auroc`: 2000
  resamples of the pages, seed 0, percentile interval); the same figures per fold;
* the probability **calibration** (:mod:`ecg_dicom.model.calibration`) fitted on the
  out-of-fold scores, its ECE / Brier before and after (after: cross-fitted over the
  same folds, so no page is judged by a calibration that saw it), the reliability
  diagram, and the figures of the rule "Abnormal iff calibrated p >= threshold";
* with ``perturb``: the **robustness table** (:data:`~ecg_dicom.train.perturb.CONDITIONS`:
  tilt 0/3/5/7/10 degrees, perspective, photo): each page perturbed
  (:mod:`ecg_dicom.train.perturb`, seeded by its name), written as a PNG and read
  through the service's path again by its own fold model; per condition accuracy,
  AUROC and the share of pages whose label is unchanged from the clean page.  "tilt 0°"
  is the clean page itself (the very prediction of the table above);
* optionally DICOM ECGs (no truth: the table lists what the models say).

Predictions are cached in ``DIR/predictions.json``
(:class:`~ecg_dicom.train.fold_setup.PredictionCache`) keyed by page, condition and
weights checksum, with a fingerprint of what else decides them (runtime, imgsz, conf,
threshold, and the source of the page reader and detector): a second run prints the
tables at once; a changed reader or model recomputes.  The text of the tables:
:mod:`ecg_dicom.train.crossval_text`; the intervals: :mod:`ecg_dicom.train.intervals`.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ecg_dicom.config import ModelSettings
from ecg_dicom.model import weights_checksum
from ecg_dicom.model.calibration import Calibration
from ecg_dicom.records import NORMAL_CLASS, Classification
from ecg_dicom.train.calibrate import brier_score, cross_fitted, fit_calibration, plot_reliability
from ecg_dicom.train.evaluate import score_predictions
from ecg_dicom.train.fold_setup import (
    PREDICTIONS_FILE,
    FoldSetup,
    PredictionCache,
    Scorer,
    classification_from_dict,
    load_setup,
    page_seed,
    read_rgb,
    reader_fingerprint,
    single_model_setup,
    subset,
    write_png,
)
from ecg_dicom.train.intervals import figures, proportion
from ecg_dicom.train.perturb import CONDITIONS, perturbed

__all__ = ["evaluate_folds", "load_setup", "single_model_setup"]

REPORT_FILE = "report.json"
CLEAN = "tilt 0°"

Progress = Callable[[int, int], None] | None


def evaluate_folds(
    folds_dir: Path,
    *,
    data: Path | None = None,
    runtime: str = "pytorch",
    precision: str = "auto",
    imgsz: int = 832,
    conf: float = 0.05,
    threshold: float = 0.5,
    threads: int = 0,
    cache_dir: Path = Path("var/model-cache"),
    perturb: bool = False,
    pages_per_class: int | None = None,
    seed: int = 0,
    calibration_weights: Path | None = None,
    write_calibration: Path | None = None,
    reliability: Path | None = None,
    dicom: Sequence[Path] = (),
    dicom_weights: Path | None = None,
    progress: Progress = None,
    setup: FoldSetup | None = None,
) -> dict[str, Any]:
    """Everything of the module docstring; returns the report (also written to
    ``DIR/report.json``).  ``calibration_weights``: the weights the fitted calibration
    is recorded for (its ``calibration`` entry then can be saved beside them);
    ``write_calibration``: save it there (``calibration.json`` beside those weights is
    what the service loads); ``dicom_weights``: the model that reads the ``dicom``
    files (default: every fold model, and ``DIR/final.pt`` when present).  ``setup``:
    folds made otherwise (:func:`single_model_setup`: one model on a page folder, no
    calibration then)."""
    setup = load_setup(folds_dir, data) if setup is None else setup
    if write_calibration is not None and calibration_weights is None:
        raise ValueError("writing a calibration needs the weights it belongs to "
                         "(--calibration-weights)")
    model = ModelSettings(
        weights=setup.weights[0], runtime=runtime,  # type: ignore[arg-type]
        precision=precision,  # type: ignore[arg-type]
        imgsz=imgsz, conf=conf, abnormal_threshold=threshold, threads=threads,
        export_cache_dir=cache_dir,
    )
    key = {"runtime": runtime, "precision": precision, "imgsz": imgsz, "conf": conf,
           "threshold": threshold, "reader": reader_fingerprint()}
    cache = PredictionCache(setup.folds_dir / PREDICTIONS_FILE, key)
    checksums = [weights_checksum(w) for w in setup.weights]
    conditions = list(CONDITIONS) if perturb else [CLEAN]
    page_fold = {rel: (fold.index, name) for fold in setup.folds for name, rel in fold.test}
    perturbed_pages = {rel for _, rel in subset(
        [(name, rel) for rel, (_, name) in page_fold.items()], pages_per_class, seed)}

    # What is not cached yet, fold by fold (one model loaded at a time).
    todo: list[tuple[int, str, str]] = []
    for fold, sha in zip(setup.folds, checksums, strict=True):
        for _, rel in fold.test:
            for condition in conditions:
                if condition != CLEAN and rel not in perturbed_pages:
                    continue
                if cache.get(condition, rel, sha) is None:
                    todo.append((fold.index, condition, rel))
    scorer = Scorer(model)
    timings: list[float] = []
    done = 0
    try:
        with tempfile.TemporaryDirectory(prefix="ecg-perturb-") as tmp:
            for index, condition, rel in sorted(todo, key=lambda t: (t[0], t[2], t[1])):
                sha = checksums[index]
                pipeline = scorer.pipeline(setup.weights[index], sha)
                started = time.perf_counter()
                if condition == CLEAN:
                    path = setup.source / rel
                else:
                    rgb = perturbed(read_rgb(setup.source / rel), condition,
                                    page_seed(rel, condition, seed))
                    path = write_png(rgb, Path(tmp) / "page.png")
                result = pipeline.read_file(path).result
                timings.append(time.perf_counter() - started)
                cache.put(condition, rel, sha, result.to_dict())
                done += 1
                if done % 20 == 0:
                    cache.save()
                if progress is not None:
                    progress(done, len(todo))
    finally:
        scorer.close()
        if todo:
            cache.save()

    def prediction(condition: str, rel: str) -> Classification:
        index = page_fold[rel][0]
        found = cache.get(condition, rel, checksums[index])
        if found is None:  # pragma: no cover - filled above
            raise RuntimeError(f"no prediction for {condition} {rel}")
        return classification_from_dict(found)

    pages = sorted(page_fold)
    truth = [page_fold[rel][1] for rel in pages]
    clean = [prediction(CLEAN, rel) for rel in pages]
    report: dict[str, Any] = {
        "folds_dir": str(setup.folds_dir), "source": str(setup.source),
        "k": len(setup.folds), "runtime": runtime, "imgsz": imgsz, "conf": conf,
        "threshold": threshold, "reader": key["reader"],
        "weights": [{"fold": f.index, "file": str(w), "sha256": s}
                    for f, w, s in zip(setup.folds, setup.weights, checksums, strict=True)],
        "computed": done,
        "ms_per_page": round(1000 * float(np.mean(timings)), 1) if timings else None,
        "out_of_fold": figures(truth, clean),
        "per_fold": [],
    }
    for fold in setup.folds:
        rels = [rel for _, rel in fold.test]
        f = score_predictions([page_fold[r][1] for r in rels],
                              [prediction(CLEAN, r) for r in rels])
        report["per_fold"].append({
            "fold": fold.index, "pages": f["pages"], "accuracy": f["accuracy"],
            "sensitivity": f["sensitivity"], "specificity": f["specificity"],
            "auroc": f["auroc"], "class_accuracy": f["class_accuracy"],
        })
    report["calibration"] = _calibrate(
        truth, clean, [page_fold[r][0] for r in pages], threshold,
        calibration_weights, reliability, setup, write_calibration,
    ) if len(setup.folds) > 1 else None
    if perturb:
        report["robustness"] = _robustness(
            sorted(perturbed_pages), page_fold, prediction, pages_per_class, seed)
    if dicom:
        report["dicom"] = _dicom_table(
            dicom, dicom_weights, setup, model, cache, progress)
        cache.save()
    report["predictions"] = [
        {"page": rel, "fold": page_fold[rel][0], "true": page_fold[rel][1],
         "label": p.label, "class_name": p.class_name, "abnormal_score": p.abnormal_score}
        for rel, p in zip(pages, clean, strict=True)
    ]
    (setup.folds_dir / REPORT_FILE).write_text(json.dumps(report, indent=1, default=str),
                                               encoding="utf-8")
    return report


def _calibrate(
    truth: list[str], clean: list[Classification], groups: list[int], threshold: float,
    weights: Path | None, reliability: Path | None, setup: FoldSetup,
    write: Path | None,
) -> dict[str, Any]:
    y = np.array([t != NORMAL_CLASS for t in truth], dtype=float)
    scores = np.array([p.abnormal_score for p in clean])
    interpretable = np.array([p.label != "Not interpretable" for p in clean])
    sha = weights_checksum(weights) if weights is not None else ""
    if len(np.unique(y[interpretable])) < 2:
        reason = (f"{int(interpretable.sum())} interpretable pages, not both normal and "
                  "abnormal ones among them")
        if write is not None:
            raise ValueError(f"no calibration can be fitted: {reason}")
        return {"method": None, "skipped": reason}
    fitted = fit_calibration(
        scores[interpretable], y[interpretable], weights_sha256=sha,
        groups=np.asarray(groups)[interpretable],
        fitted_on=(f"{int(interpretable.sum())} out-of-fold predictions of the "
                   f"{len(setup.folds)} fold models of {setup.folds_dir} on {setup.source}"),
    )
    crossed = cross_fitted(fitted.method, scores[interpretable], y[interpretable],
                           np.asarray(groups)[interpretable])
    calls = crossed >= threshold
    actual = y[interpretable] > 0.5
    tp, tn = int((calls & actual).sum()), int((~calls & ~actual).sum())
    n = int(interpretable.sum())
    out: dict[str, Any] = {
        **fitted.to_dict(),
        "weights": str(weights) if weights is not None else None,
        "not_interpretable_left_out": int((~interpretable).sum()),
        "calibrated_rule": {
            "rule": f"Abnormal iff calibrated p >= {threshold} (cross-fitted)",
            "accuracy": proportion(tp + tn, n),
            "sensitivity": proportion(tp, int(actual.sum())),
            "specificity": proportion(tn, int((~actual).sum())),
        },
        "brier_in_sample": round(brier_score(fitted.apply(scores[interpretable]),
                                             y[interpretable]), 5),
    }
    if reliability is not None:
        plot_reliability(
            y[interpretable],
            {"raw score": np.clip(scores[interpretable], 0, 1),
             f"calibrated ({fitted.method}, cross-fitted)": crossed},
            reliability, title=f"out-of-fold reliability, {n} pages",
        )
        out["reliability_png"] = str(reliability)
    if write is not None and weights is not None:
        Calibration(fitted.method, fitted.params, sha, {
            **fitted.record, "weights": Path(weights).name,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }).save(write)
        out["written"] = str(write)
    return out


def _robustness(
    pages: list[str], page_fold: dict[str, tuple[int, str]],
    prediction: Callable[[str, str], Classification], per_class: int | None, seed: int,
) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    truth = [page_fold[r][1] for r in pages]
    actual = [t != NORMAL_CLASS for t in truth]
    clean = [prediction(CLEAN, r) for r in pages]
    rows = []
    for condition in CONDITIONS:
        preds = [prediction(condition, r) for r in pages]
        right = sum((p.label == "Abnormal") == a for p, a in zip(preds, actual, strict=True))
        same = sum(p.label == c.label for p, c in zip(preds, clean, strict=True))
        scores = [p.abnormal_score for p in preds]
        auroc = (float(roc_auc_score(actual, scores))
                 if 0 < sum(actual) < len(actual) else None)
        rows.append({
            "condition": condition, "pages": len(pages),
            "accuracy": proportion(right, len(pages)), "auroc": auroc,
            "unchanged": proportion(same, len(pages)),
            "not_interpretable": sum(p.label == "Not interpretable" for p in preds),
        })
    return {
        "pages": len(pages),
        "selection": ("all out-of-fold pages" if per_class is None
                      else f"{per_class} pages per class (fewer where a class has fewer), "
                           f"drawn with seed {seed}"),
        "conditions": rows,
    }


def _dicom_table(
    files: Sequence[Path], weights: Path | None, setup: FoldSetup, model: ModelSettings,
    cache: PredictionCache, progress: Progress,
) -> list[dict[str, Any]]:
    """What each model says about each DICOM ECG (no truth labels)."""
    models = [weights] if weights is not None else list(dict.fromkeys(setup.weights))
    final = setup.folds_dir / "final.pt"
    if weights is None and final.is_file():
        models.append(final)
    scorer = Scorer(model)
    rows: list[dict[str, Any]] = []
    try:
        for w in models:
            sha = weights_checksum(w)
            for f in files:
                found = cache.get(f"dicom {sha}", str(f), sha)
                if found is None:
                    found = scorer.pipeline(w, sha).read_file(Path(f)).result.to_dict()
                    cache.put(f"dicom {sha}", str(f), sha, found)
                rows.append({
                    "file": str(f), "weights": w.name, "label": found["label"],
                    "class_name": found.get("class_name"),
                    "abnormal_score": found["abnormal_score"], "reason": found.get("reason"),
                })
    finally:
        scorer.close()
    return rows
