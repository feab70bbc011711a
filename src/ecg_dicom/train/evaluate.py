"""Evaluate the detector on labelled pages with the service's own decision rule.

Every page goes the service's own path, :meth:`ecg_dicom.pipeline.Pipeline.read_file`:
the service's page reader (an image is read as ``ecg-dicom classify`` and
``/api/classify`` read it, a DICOM ECG rendered as the listener renders it), the
same :class:`~ecg_dicom.model.Detector` and the one decision rule
(:func:`~ecg_dicom.model.decide`).  So the figures are the figures of the service,
not of a separate evaluation path.  The maths (:func:`score_predictions`) is a pure
function of the true classes and the :class:`~ecg_dicom.records.Classification`
records, tested on known predictions.

Conventions:

* Abnormal is the positive class: sensitivity = abnormal pages called Abnormal,
  specificity = normal pages called Normal.  A page with no box ("Not interpretable") is
  not called Abnormal; it is counted apart as well.
* AUROC is computed on ``abnormal_score`` (0 for "Not interpretable").
* The confusion matrix has one row per **predicted** class (the top box's class)
  plus a last row "no detection", and one column per **true** class.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ecg_dicom.config import ModelSettings, Settings
from ecg_dicom.model import Detector, weights_checksum
from ecg_dicom.pipeline import Pipeline
from ecg_dicom.records import CLASS_NAMES, NORMAL_CLASS, NOT_INTERPRETABLE, Classification
from ecg_dicom.train.dataset import FOLDER_CLASSES, IMAGE_SUFFIXES
from ecg_dicom.train.seen import seen_in_training

NO_DETECTION = "no detection"


def split_of(data_dir: Path, split: str = "val") -> str | None:
    """The split name an evaluation of ``data_dir`` reports: ``split`` for a dataset
    made by ``dataset build`` (it has a ``split.json``), None for class folders
    (which are no split of anything the weights know)."""
    return split if (Path(data_dir) / "split.json").is_file() else None


def collect_pages(data_dir: Path, split: str = "val") -> list[tuple[str, Path]]:
    """(true class, image path) for every page to evaluate.

    ``data_dir`` is either a folder of class folders (``heart_block``, ``history_mi``,
    ``mi``, ``normal``) or a dataset made by ``dataset build`` (then the pages of
    ``split`` recorded in its ``split.json``).
    """
    data_dir = Path(data_dir)
    split_file = data_dir / "split.json"
    if split_file.is_file():
        record = json.loads(split_file.read_text(encoding="utf-8"))
        return [(item["class"], Path(item["file"])) for item in record[split]]
    pages: list[tuple[str, Path]] = []
    for folder, name in FOLDER_CLASSES.items():
        sub = data_dir / folder
        if sub.is_dir():
            pages += [
                (name, p) for p in sorted(sub.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES
            ]
    if not pages:
        raise FileNotFoundError(
            f"{data_dir} has no class folders {sorted(FOLDER_CLASSES)} and no split.json"
        )
    return pages


def score_predictions(
    truth: Sequence[str], predictions: Sequence[Classification]
) -> dict[str, Any]:
    """Normal/Abnormal and 4-class figures from true classes and classifications."""
    if len(truth) != len(predictions):
        raise ValueError("one prediction per true class is needed")
    from sklearn.metrics import roc_auc_score

    actual = [name != NORMAL_CLASS for name in truth]
    called = [p.label == "Abnormal" for p in predictions]
    tp = sum(a and c for a, c in zip(actual, called, strict=True))
    tn = sum((not a) and (not c) for a, c in zip(actual, called, strict=True))
    fp = sum((not a) and c for a, c in zip(actual, called, strict=True))
    fn = sum(a and (not c) for a, c in zip(actual, called, strict=True))
    n = len(truth)
    rows = [*CLASS_NAMES, NO_DETECTION]
    matrix = [[0] * len(CLASS_NAMES) for _ in rows]
    for name, pred in zip(truth, predictions, strict=True):
        row = rows.index(pred.class_name) if pred.class_name in CLASS_NAMES else len(rows) - 1
        matrix[row][CLASS_NAMES.index(name)] += 1
    per_class: dict[str, dict[str, float | int | None]] = {}
    for j, name in enumerate(CLASS_NAMES):
        support = sum(1 for t in truth if t == name)
        # Normal/Abnormal sensitivity of the class: its pages given the right binary label.
        right_side = sum(
            1 for t, p in zip(truth, predictions, strict=True)
            if t == name and (p.label == "Abnormal") == (name != NORMAL_CLASS)
        )
        per_class[name] = {
            "pages": support,
            "sensitivity": matrix[j][j] / support if support else None,
            "binary_sensitivity": right_side / support if support else None,
        }
    scores = [p.abnormal_score for p in predictions]
    auroc = roc_auc_score(actual, scores) if 0 < sum(actual) < n else None
    return {
        "pages": n,
        "accuracy": (tp + tn) / n if n else None,
        "sensitivity": tp / (tp + fn) if tp + fn else None,
        "specificity": tn / (tn + fp) if tn + fp else None,
        "auroc": float(auroc) if auroc is not None else None,
        "counts": {"tp": tp, "tn": tn, "fp": fp, "fn": fn},
        "no_finding": sum(1 for p in predictions if p.label == NOT_INTERPRETABLE),
        "class_accuracy": sum(matrix[j][j] for j in range(len(CLASS_NAMES))) / n if n else None,
        "per_class": per_class,
        "confusion_matrix": {
            "rows_predicted": rows,
            "columns_true": list(CLASS_NAMES),
            "matrix": matrix,
        },
    }


def plot_confusion(report: dict[str, Any], path: Path, title: str = "") -> Path:
    """Write the confusion matrix of a report as a PNG (counts in each cell)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = report["confusion_matrix"]
    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=110)
    ax.imshow(cm["matrix"], cmap="Blues")
    ax.set_xticks(range(len(cm["columns_true"])), cm["columns_true"], rotation=30, ha="right")
    ax.set_yticks(range(len(cm["rows_predicted"])), cm["rows_predicted"])
    ax.set_xlabel("true class")
    ax.set_ylabel("predicted class (top box)")
    peak = max(max(r) for r in cm["matrix"]) or 1
    for i, row in enumerate(cm["matrix"]):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center",
                    color="white" if value > peak / 2 else "black")
    acc = report.get("accuracy")
    auroc = report.get("auroc")
    summary = f"Normal/Abnormal accuracy {acc:.3f}" if acc is not None else ""
    if auroc is not None:
        summary += f", AUROC {auroc:.3f}"
    ax.set_title(f"{title}\n{summary}".strip())
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def evaluate(
    data_dir: Path,
    weights: Path,
    *,
    runtime: str = "pytorch",
    precision: str = "auto",
    imgsz: int = 640,
    conf: float = 0.05,
    threshold: float = 0.5,
    threads: int = 0,
    plot: Path | None = None,
    split: str = "val",
    cache_dir: Path = Path("var/model-cache"),
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run the detector on every page of ``data_dir`` and score it.

    ``weights`` need no ``.sha256`` beside them (a candidate ``best.pt`` has none):
    the checksum is computed and reported.  Returns the report of
    :func:`score_predictions` plus the model, settings and timing, and per page
    the true class and the classification.  ``split`` is reported only for a built
    dataset (:func:`split_of`).  ``training_pages``: how many of the pages trained
    these weights (:func:`ecg_dicom.train.seen.seen_in_training`) and, when some
    did, the figures of the others alone (``unseen``).  ``progress(done, total)`` is
    called after each page.
    """
    checksum = weights_checksum(Path(weights))
    settings = ModelSettings(
        weights=Path(weights), sha256=checksum, runtime=runtime,  # type: ignore[arg-type]
        precision=precision,  # type: ignore[arg-type]
        imgsz=imgsz, conf=conf, abnormal_threshold=threshold, threads=threads,
        export_cache_dir=cache_dir,
    )
    detector = Detector(settings)
    pipeline = Pipeline(Settings.model_construct(model=settings), detector=detector)
    pages = collect_pages(data_dir, split)
    predictions: list[Classification] = []
    started = time.perf_counter()
    for _, path in pages:
        predictions.append(pipeline.read_file(path).result)
        if progress is not None:
            progress(len(predictions), len(pages))
    elapsed = time.perf_counter() - started
    report = score_predictions([c for c, _ in pages], predictions)
    report.update(
        weights=str(weights), sha256=checksum, runtime=detector.runtime,
        precision=detector.precision, imgsz=imgsz, conf=conf,
        threshold=threshold, data=str(data_dir), split=split_of(data_dir, split),
        probability=detector.probability_kind,
        ms_per_page=round(1000 * elapsed / max(len(pages), 1), 1),
        predictions=[
            {"file": str(p), "true": c, **pred.to_dict()}
            for (c, p), pred in zip(pages, predictions, strict=True)
        ],
    )
    record, seen = seen_in_training(Path(weights), checksum, [p for _, p in pages])
    unseen = [(c, pred) for (c, p), pred in zip(pages, predictions, strict=True) if p not in seen]
    report["training_pages"] = {
        "record": str(record) if record else None,
        "seen": len(seen),
        "unseen": score_predictions([c for c, _ in unseen], [p for _, p in unseen])
        if seen and unseen else None,
    }
    if plot is not None:
        plot_confusion(report, Path(plot), title=f"{Path(weights).name} on {Path(data_dir).name}")
        report["plot"] = str(plot)
    return report


def training_pages_warning(report: dict[str, Any]) -> str:
    """The warning for an evaluation that includes pages the weights were trained on."""
    seen = report["training_pages"]["seen"]
    if not seen:
        return ""
    return (
        f"evaluate: WARNING: {seen} of the {report['pages']} pages were used to train these "
        f"weights (listed in {report['training_pages']['record']}); figures on them overstate "
        "how the model does on new ECGs. The figures of the other pages alone are printed "
        "as 'not seen in training'. Evaluate on pages the model has not seen, e.g. the val "
        "split of the dataset it was trained on."
    )


def format_report(report: dict[str, Any]) -> str:
    """A short human-readable summary of an evaluation report."""

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{100 * v:.1f} %"

    where = (f"split {report['split']} of {report['data']}" if report.get("split")
             else f"the pages of {report['data']} (class folders)")
    lines = [
        f"evaluated on {where}",
        (f"weights {report['weights']} (sha256 {report['sha256'][:12]}), runtime "
         f"{report['runtime']} ({report.get('precision', 'f32')}), imgsz {report['imgsz']}, "
         f"threshold {report['threshold']}, probability "
         f"{report.get('probability', 'uncalibrated')}"),
        f"pages {report['pages']}: accuracy {pct(report['accuracy'])}, sensitivity "
        f"{pct(report['sensitivity'])}, specificity {pct(report['specificity'])}, AUROC "
        + ("n/a" if report["auroc"] is None else f"{report['auroc']:.3f}"),
    ]
    for name, row in report["per_class"].items():
        lines.append(
            f"  {name:<11} pages {row['pages']:>3}  class sensitivity {pct(row['sensitivity'])}"
            f"  Normal/Abnormal right {pct(row['binary_sensitivity'])}"
        )
    unseen = report.get("training_pages", {}).get("unseen")
    if unseen:
        lines.append(
            f"not seen in training: {unseen['pages']} pages: accuracy {pct(unseen['accuracy'])}, "
            f"sensitivity {pct(unseen['sensitivity'])}, specificity {pct(unseen['specificity'])}"
        )
    cm = report["confusion_matrix"]
    columns = ", ".join(cm["columns_true"])
    lines.append(f"confusion matrix (rows predicted, columns true: {columns})")
    for name, row in zip(cm["rows_predicted"], cm["matrix"], strict=True):
        lines.append(f"  {name:<12} " + " ".join(f"{v:>4}" for v in row))
    return "\n".join(lines)
