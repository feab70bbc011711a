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

Predictions are cached in ``DIR/predictions.json`` (:class:`PredictionCache`) keyed by
page, condition and weights checksum, with a fingerprint of what else decides them
(runtime, imgsz, conf, threshold, and the source of the page reader and detector): a
second run prints the tables at once; a changed reader or model recomputes.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecg_dicom.config import ModelSettings, Settings
from ecg_dicom.model import Detector, weights_checksum
from ecg_dicom.model.calibration import (
    Calibration,
    brier_score,
    cross_fitted,
    fit_calibration,
    plot_reliability,
)
from ecg_dicom.pipeline import Pipeline
from ecg_dicom.records import CLASS_NAMES, NORMAL_CLASS, Classification, Detection
from ecg_dicom.train.evaluate import score_predictions
from ecg_dicom.train.folds import Fold, read_folds
from ecg_dicom.train.perturb import CONDITIONS, perturbed

FOLDS_FILE = "folds.json"
PREDICTIONS_FILE = "predictions.json"
REPORT_FILE = "report.json"
CLEAN = "tilt 0°"
BOOTSTRAP_RESAMPLES = 2000
Z95 = 1.959964

Progress = Callable[[int, int], None] | None


# -- statistics ------------------------------------------------------------------------
def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (95 % by default); None when n = 0."""
    if n <= 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, float(centre - half)), min(1.0, float(centre + half)))


def bootstrap_auroc(
    actual: Sequence[bool], scores: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float] | None:
    """95 % percentile interval of AUROC over ``resamples`` bootstrap resamples of the
    pages (seeded); resamples with one class only are skipped.  None without both."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(actual, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.all() or not y.any():
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        idx = rng.integers(0, y.size, y.size)
        if y[idx].all() or not y[idx].any():
            continue
        values.append(roc_auc_score(y[idx], s[idx]))
    return (float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5)))


def _proportion(k: int, n: int) -> dict[str, Any]:
    return {"value": k / n if n else None, "k": k, "n": n, "ci95": wilson(k, n)}


def figures(truth: Sequence[str], predictions: Sequence[Classification]) -> dict[str, Any]:
    """:func:`~ecg_dicom.train.evaluate.score_predictions` plus 95 % intervals:
    Wilson for every proportion, bootstrap (seeded) for AUROC."""
    report = score_predictions(truth, predictions)
    c = report["counts"]
    n = report["pages"]
    right4 = sum(report["confusion_matrix"]["matrix"][j][j] for j in range(len(CLASS_NAMES)))
    actual = [t != NORMAL_CLASS for t in truth]
    report["intervals"] = {
        "accuracy": _proportion(c["tp"] + c["tn"], n),
        "sensitivity": _proportion(c["tp"], c["tp"] + c["fn"]),
        "specificity": _proportion(c["tn"], c["tn"] + c["fp"]),
        "class_accuracy": _proportion(right4, n),
        "auroc": {"value": report["auroc"],
                  "ci95": bootstrap_auroc(actual, [p.abnormal_score for p in predictions])},
        "per_class": {
            name: _proportion(report["confusion_matrix"]["matrix"][j][j],
                              sum(1 for t in truth if t == name))
            for j, name in enumerate(CLASS_NAMES)
        },
    }
    return report


# -- the folds -----------------------------------------------------------------------
@dataclass(frozen=True)
class FoldSetup:
    """The folds of ``DIR/folds.json``, the source folder and each fold's weights."""

    folds_dir: Path
    source: Path
    folds: tuple[Fold, ...]
    weights: tuple[Path, ...]


def load_setup(folds_dir: Path, data: Path | None = None) -> FoldSetup:
    """Read ``folds.json`` and check that every page and every fold model is there;
    a missing one is named in the error (FileNotFoundError)."""
    folds_dir = Path(folds_dir)
    path = folds_dir / FOLDS_FILE
    if not folds_dir.is_dir():
        raise FileNotFoundError(f"folds folder {folds_dir} not found")
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: --folds needs a folder with folds.json")
    record = json.loads(path.read_text(encoding="utf-8"))
    folds = tuple(read_folds(path))
    if not folds:
        raise ValueError(f"{path} has no folds")
    source = Path(data) if data is not None else Path(str(record.get("source", "")))
    if not source.is_dir():
        raise FileNotFoundError(
            f"page folder {source} not found (from {'--data' if data else path}); "
            "give the folder of class folders with --data"
        )
    weights = []
    for fold in folds:
        w = Path(fold.weights)
        w = w if w.is_absolute() else folds_dir / w
        if not w.is_file():
            raise FileNotFoundError(f"weights of fold {fold.index} ({w}) not found")
        weights.append(w)
    missing = [rel for fold in folds for _, rel in fold.test if not (source / rel).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} test pages of {path} are not in {source}, e.g. {missing[0]}"
        )
    return FoldSetup(folds_dir, source, folds, tuple(weights))


def reader_fingerprint() -> str:
    """SHA-256 (16 hex) of the source of what turns a file into a score: the modules of
    the page reader the pipeline loads (``ecg_dicom.pages.*``, straightening included
    once the reader uses it), the detector, its preprocessing and the decision rule.
    A change recomputes cached predictions."""
    import sys

    import ecg_dicom.pipeline  # noqa: F401  (imports the page reader it uses)

    names = sorted(
        name for name in list(sys.modules)
        if name.startswith("ecg_dicom.pages.") or name in {
            "ecg_dicom.model.detector", "ecg_dicom.model.preprocess", "ecg_dicom.model.decision"}
    )
    digest = hashlib.sha256()
    for name in names:
        source = getattr(sys.modules[name], "__file__", None)
        if source:
            digest.update(name.encode() + b"\0" + Path(source).read_bytes())
    return digest.hexdigest()[:16]


class PredictionCache:
    """Per-page predictions in ``DIR/predictions.json``: ``{"entries": {"<condition>|<page>":
    {"sha256", "key", "prediction"}}}``; an entry counts only for the same weights and key."""

    def __init__(self, path: Path, key: dict[str, Any]) -> None:
        self.path = Path(path)
        self.key = json.dumps(key, sort_keys=True)
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                self.entries = dict(data.get("entries", {}))
            except (OSError, ValueError):
                self.entries = {}

    def get(self, condition: str, page: str, sha256: str) -> dict[str, Any] | None:
        entry = self.entries.get(f"{condition}|{page}")
        if entry and entry.get("sha256") == sha256 and entry.get("key") == self.key:
            return dict(entry["prediction"])
        return None

    def put(self, condition: str, page: str, sha256: str, prediction: dict[str, Any]) -> None:
        self.entries[f"{condition}|{page}"] = {
            "sha256": sha256, "key": self.key, "prediction": prediction,
        }

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"entries": self.entries}, ensure_ascii=False),
                       encoding="utf-8")
        tmp.replace(self.path)


def classification_from_dict(d: dict[str, Any]) -> Classification:
    """A :class:`Classification` back from its ``to_dict`` (the cache)."""
    return Classification(
        label=d["label"], class_name=d.get("class_name"), confidence=float(d["confidence"]),
        abnormal_score=float(d["abnormal_score"]),
        detections=tuple(
            Detection(x["class_name"], float(x["confidence"]), tuple(x["box"]))  # type: ignore[arg-type]
            for x in d.get("detections", ())
        ),
        model_name=d.get("model_name", ""), model_version=d.get("model_version", ""),
        runtime=d.get("runtime", ""), reason=d.get("reason", ""),
    )


@dataclass
class Scorer:
    """Loads a pipeline per weights (once) and reads pages through it."""

    model: ModelSettings
    calibrate: bool = False
    _loaded: tuple[str, Pipeline] | None = None

    def pipeline(self, weights: Path, sha256: str) -> Pipeline:
        if self._loaded is not None and self._loaded[0] == sha256:
            return self._loaded[1]
        if self._loaded is not None:
            self._loaded[1].close()
        settings = self.model.model_copy(update={"weights": weights, "sha256": sha256})
        detector = Detector(settings, calibrate=self.calibrate)
        pipeline = Pipeline(Settings.model_construct(model=settings), detector=detector)
        self._loaded = (sha256, pipeline)
        return pipeline

    def close(self) -> None:
        if self._loaded is not None:
            self._loaded[1].close()
            self._loaded = None


def _page_seed(page: str, condition: str, seed: int) -> int:
    return (zlib.crc32(f"{seed}|{condition}|{page}".encode()) & 0x7FFFFFFF)


def _read_rgb(path: Path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"{path} cannot be read as an image")
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def _write_png(rgb: np.ndarray, path: Path) -> Path:
    import cv2

    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return path


def subset(pages: Sequence[tuple[str, str]], per_class: int | None, seed: int) -> list[
    tuple[str, str]
]:
    """``per_class`` pages of each class, drawn with ``seed`` (all when None)."""
    if per_class is None:
        return list(pages)
    rng = np.random.default_rng(seed)
    chosen: list[tuple[str, str]] = []
    for name in CLASS_NAMES:
        members = sorted(p for p in pages if p[0] == name)
        order = rng.permutation(len(members))
        chosen += [members[i] for i in sorted(order[:per_class])]
    return chosen


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
                    rgb = perturbed(_read_rgb(setup.source / rel), condition,
                                    _page_seed(rel, condition, seed))
                    path = _write_png(rgb, Path(tmp) / "page.png")
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
            "accuracy": _proportion(tp + tn, n),
            "sensitivity": _proportion(tp, int(actual.sum())),
            "specificity": _proportion(tn, int((~actual).sum())),
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


def single_model_setup(data: Path, weights: Path, out: Path) -> FoldSetup:
    """One "fold" holding every page of the class folders ``data``, read by ``weights``
    (``evaluate --perturb --data --weights``: a robustness table of one model; its
    figures are honest only on pages that model never saw).  ``out`` holds the cache."""
    from ecg_dicom.train.folds import source_pages

    data, weights = Path(data), Path(weights)
    if not data.is_dir():
        raise FileNotFoundError(f"page folder {data} not found")
    if not weights.is_file():
        raise FileNotFoundError(f"weights {weights} not found")
    pages = source_pages(data)
    test = tuple(sorted(((name, rel) for name, rels in pages.items() for rel in rels),
                        key=lambda t: t[1]))
    out.mkdir(parents=True, exist_ok=True)
    return FoldSetup(out, data, (Fold(index=0, test=test, weights=str(weights)),), (weights,))


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
            "accuracy": _proportion(right, len(pages)), "auroc": auroc,
            "unchanged": _proportion(same, len(pages)),
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
                found = cache.get("dicom", str(f), sha)
                if found is None:
                    found = scorer.pipeline(w, sha).read_file(Path(f)).result.to_dict()
                    cache.put("dicom", str(f), sha, found)
                rows.append({
                    "file": str(f), "weights": w.name, "label": found["label"],
                    "class_name": found.get("class_name"),
                    "abnormal_score": found["abnormal_score"], "reason": found.get("reason"),
                })
    finally:
        scorer.close()
    return rows


# -- text ------------------------------------------------------------------------------
def _pct(item: dict[str, Any]) -> str:
    if item.get("value") is None:
        return "n/a"
    ci = item.get("ci95")
    text = f"{100 * item['value']:.1f} %"
    if "k" in item:
        text += f" ({item['k']}/{item['n']})"
    if ci:
        text += f" [{100 * ci[0]:.1f}–{100 * ci[1]:.1f}]"
    return text


def format_folds_report(report: dict[str, Any]) -> str:
    """The tables of a fold evaluation, as text."""
    oof = report["out_of_fold"]
    ci = oof["intervals"]
    auroc = ci["auroc"]
    lines = [
        f"{report['k']}-fold cross-validation, {oof['pages']} pages of {report['source']} "
        f"(each scored by the fold model that never saw it), runtime {report['runtime']}, "
        f"imgsz {report['imgsz']}, threshold {report['threshold']} on the raw abnormal score",
        f"predictions computed now: {report['computed']}"
        + (f" ({report['ms_per_page']} ms/page)" if report.get("ms_per_page") else "")
        + f"; cached in {report['folds_dir']}/{PREDICTIONS_FILE}",
        "out-of-fold figures [95 % interval: Wilson; AUROC: bootstrap, 2000 resamples, seed 0]",
        f"  Normal/Abnormal accuracy  {_pct(ci['accuracy'])}",
        f"  sensitivity (Abnormal)    {_pct(ci['sensitivity'])}",
        f"  specificity (Normal)      {_pct(ci['specificity'])}",
        "  AUROC (raw score)         " + ("n/a" if auroc["value"] is None else (
            f"{auroc['value']:.3f}" + (f" [{auroc['ci95'][0]:.3f}–{auroc['ci95'][1]:.3f}]"
                                       if auroc["ci95"] else ""))),
        f"  4-class accuracy          {_pct(ci['class_accuracy'])}",
        f"  not interpretable         {oof['no_finding']}",
        "  per class: class sensitivity (top box) | Normal/Abnormal right",
    ]
    for name, item in ci["per_class"].items():
        binary = oof["per_class"][name]["binary_sensitivity"]
        lines.append(f"    {name:<11} {_pct(item):<28} | "
                     + ("n/a" if binary is None else f"{100 * binary:.1f} %"))
    lines.append("per fold: pages, accuracy, sensitivity, specificity, AUROC, 4-class")
    for f in report["per_fold"]:
        def p(v: float | None) -> str:
            return "  n/a" if v is None else f"{100 * v:5.1f}"
        lines.append(
            f"  fold {f['fold']}  {f['pages']:>4}  {p(f['accuracy'])}  {p(f['sensitivity'])}  "
            f"{p(f['specificity'])}  "
            + ("  n/a" if f["auroc"] is None else f"{f['auroc']:.3f}")
            + f"  {p(f['class_accuracy'])}"
        )
    cal = report["calibration"] or {}
    if cal.get("skipped"):
        lines.append(f"calibration: not fitted ({cal['skipped']})")
        cal = {}
    losses = cal.get("cross_fitted_log_loss", {})
    rule = cal.get("calibrated_rule", {})
    lines += [] if not cal else [
        f"calibration: {cal['method']} (cross-fitted log-loss platt {losses['platt']:.4f}, "
        f"isotonic {losses['isotonic']:.4f} nats/page; {cal['rule']})",
        f"  ECE (10 bins) raw {cal['ece_before']:.4f} -> calibrated {cal['ece_after']:.4f} "
        f"(cross-fitted; in-sample {cal['ece_after_in_sample']:.4f})",
        f"  Brier raw {cal['brier_before']:.4f} -> calibrated {cal['brier_after']:.4f}",
        f"  {rule['rule']}: accuracy {_pct(rule['accuracy'])}, sensitivity "
        f"{_pct(rule['sensitivity'])}, specificity {_pct(rule['specificity'])}",
    ]
    if cal.get("reliability_png"):
        lines.append(f"  reliability diagram: {cal['reliability_png']}")
    if cal.get("written"):
        lines.append(f"  written: {cal['written']} (for weights sha256 "
                     f"{cal['weights_sha256'][:12]})")
    rob = report.get("robustness")
    if rob:
        lines.append(f"robustness ({rob['pages']} pages: {rob['selection']}; each page read "
                     "by its own fold model through the service's path)")
        lines.append(f"  {'condition':<18} {'accuracy':<28} {'AUROC':<7} "
                     f"{'label unchanged':<28} not interpretable")
        for row in rob["conditions"]:
            auroc_text = "n/a" if row["auroc"] is None else f"{row['auroc']:.3f}"
            lines.append(f"  {row['condition']:<18} {_pct(row['accuracy']):<28} "
                         f"{auroc_text:<7} {_pct(row['unchanged']):<28} "
                         f"{row['not_interpretable']}")
    if report.get("dicom"):
        lines.append("DICOM ECGs (no truth labels; pydicom's example states 'ECG NORMALE')")
        for row in report["dicom"]:
            lines.append(f"  {Path(row['file']).parent.name + '/' + Path(row['file']).name:<40} "
                         f"{row['weights']:<10} {row['label']:<17} "
                         f"{row['class_name'] or '':<11} score {row['abnormal_score']:.3f}")
    return "\n".join(lines)
