"""95 % intervals of the evaluation figures: Wilson for proportions, bootstrap for AUROC.

:func:`figures` is :func:`~ecg_dicom.train.evaluate.score_predictions` with an
``intervals`` entry: the Wilson score interval of every proportion (accuracy,
sensitivity, specificity, 4-class accuracy, per-class sensitivity) and a seeded
percentile bootstrap of AUROC (2000 resamples of the pages).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ecg_dicom.records import CLASS_NAMES, NORMAL_CLASS, Classification
from ecg_dicom.train.evaluate import score_predictions

BOOTSTRAP_RESAMPLES = 2000
Z95 = 1.959964


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


def proportion(k: int, n: int) -> dict[str, Any]:
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
        "accuracy": proportion(c["tp"] + c["tn"], n),
        "sensitivity": proportion(c["tp"], c["tp"] + c["fn"]),
        "specificity": proportion(c["tn"], c["tn"] + c["fp"]),
        "class_accuracy": proportion(right4, n),
        "auroc": {"value": report["auroc"],
                  "ci95": bootstrap_auroc(actual, [p.abnormal_score for p in predictions])},
        "per_class": {
            name: proportion(report["confusion_matrix"]["matrix"][j][j],
                              sum(1 for t in truth if t == name))
            for j, name in enumerate(CLASS_NAMES)
        },
    }
    return report
