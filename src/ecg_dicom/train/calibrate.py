"""Fitting the probability calibration (:mod:`ecg_dicom.model.calibration`) and measuring it.

Fitted on out-of-fold predictions (``ecg-dicom evaluate --folds``).  Two methods:

* **platt**: ``p = sigmoid(a * logit(s) + b)`` on the log-odds of the score ``s`` (the
  score is a ratio of sigmoid confidences, so its log-odds are the natural axis),
  fitted by Newton's method on Platt's (1999) smoothed targets ``(N+ + 1) / (N+ + 2)``
  and ``1 / (N- + 2)``, which keeps the fit finite when the classes separate perfectly;
* **isotonic**: scikit-learn's ``IsotonicRegression`` on the log-odds, kept inside
  ``[1 / (n + 2), (n + 1) / (n + 2)]``.

**The rule** (fixed before any fit was looked at): the candidates are compared by their
*cross-fitted* log-loss on the out-of-fold set: for each cross-validation fold, the method
is fitted on the other folds' pages and scores this fold's pages; the log-losses of all
pages are averaged.  Isotonic is chosen only when its log-loss is lower than Platt's by
more than :data:`ISOTONIC_MARGIN` nats per page; otherwise Platt (two parameters, smooth,
hard to over-fit on a few hundred pages).  The same cross-fitted probabilities give the
honest "after" figures (ECE, Brier): a page's calibrated probability there comes from a
calibration that did not see it.

**Expected calibration error** (:func:`expected_calibration_error`): the pages are put in
10 equal-width bins of the probability of abnormal ([0, 0.1), ..., [0.9, 1.0]); ECE =
sum over bins of (pages in bin / all pages) x |share of abnormal pages in the bin - mean
probability in the bin|.  The **Brier score** is the mean of (p - y)^2, y = 1 for
abnormal.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ecg_dicom.model.calibration import Calibration, Method, logit, sigmoid

#: Isotonic must beat Platt's cross-fitted log-loss by more than this (nats per page).
ISOTONIC_MARGIN = 0.005
#: Bins of the reliability diagram and of the ECE.
ECE_BINS = 10


# -- measures ---------------------------------------------------------------------------
def _arrays(p: np.ndarray | Sequence[float], y: np.ndarray | Sequence[int]) -> tuple[
    np.ndarray, np.ndarray
]:
    probs = np.asarray(p, dtype=np.float64)
    truth = np.asarray(y, dtype=np.float64)
    if probs.shape != truth.shape or probs.ndim != 1:
        raise ValueError("one probability per true label is needed")
    if probs.size == 0:
        raise ValueError("no predictions")
    return probs, truth


def bin_index(p: np.ndarray, bins: int = ECE_BINS) -> np.ndarray:
    """The equal-width bin of each probability: [0, 1/bins) ... [1 - 1/bins, 1]."""
    return np.asarray(np.minimum((np.asarray(p) * bins).astype(int), bins - 1))


def reliability_bins(
    p: np.ndarray | Sequence[float], y: np.ndarray | Sequence[int], bins: int = ECE_BINS
) -> list[dict[str, float | int | None]]:
    """Per equal-width bin: its range, pages, mean probability, share abnormal."""
    probs, truth = _arrays(p, y)
    idx = bin_index(probs, bins)
    rows: list[dict[str, float | int | None]] = []
    for b in range(bins):
        members = idx == b
        n = int(members.sum())
        rows.append({
            "low": b / bins, "high": (b + 1) / bins, "pages": n,
            "mean_probability": float(probs[members].mean()) if n else None,
            "share_abnormal": float(truth[members].mean()) if n else None,
        })
    return rows


def expected_calibration_error(
    p: np.ndarray | Sequence[float], y: np.ndarray | Sequence[int], bins: int = ECE_BINS
) -> float:
    """ECE over ``bins`` equal-width bins of the probability of abnormal (module doc)."""
    probs, truth = _arrays(p, y)
    idx = bin_index(probs, bins)
    total = 0.0
    for b in range(bins):
        members = idx == b
        if members.any():
            total += members.mean() * abs(truth[members].mean() - probs[members].mean())
    return float(total)


def brier_score(p: np.ndarray | Sequence[float], y: np.ndarray | Sequence[int]) -> float:
    """Mean of (p - y)^2."""
    probs, truth = _arrays(p, y)
    return float(np.mean((probs - truth) ** 2))


def log_loss(p: np.ndarray | Sequence[float], y: np.ndarray | Sequence[int]) -> float:
    """Mean negative log-likelihood (nats per page), p clipped to [1e-6, 1 - 1e-6]."""
    probs, truth = _arrays(p, y)
    probs = np.clip(probs, 1e-6, 1 - 1e-6)
    return float(-np.mean(truth * np.log(probs) + (1 - truth) * np.log(1 - probs)))


# -- fitting -------------------------------------------------------------------------
def fit_platt(scores: np.ndarray | Sequence[float], y: np.ndarray | Sequence[int]) -> dict[
    str, float
]:
    """Platt scaling on the log-odds of the score: ``{"a", "b"}`` (see the module doc)."""
    z = logit(scores)
    truth = np.asarray(y, dtype=np.float64)
    positives = float(truth.sum())
    negatives = float(truth.size - positives)
    target = np.where(truth > 0.5, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    a, b = 1.0, 0.0

    def loss(a_: float, b_: float) -> float:
        q = np.clip(sigmoid(a_ * z + b_), 1e-12, 1 - 1e-12)
        return float(-np.sum(target * np.log(q) + (1 - target) * np.log(1 - q)))

    current = loss(a, b)
    for _ in range(100):
        q = sigmoid(a * z + b)
        w = q * (1 - q) + 1e-12
        grad = np.array([np.sum((q - target) * z), np.sum(q - target)])
        hess = np.array([[np.sum(w * z * z), np.sum(w * z)], [np.sum(w * z), np.sum(w)]])
        hess += np.eye(2) * 1e-9
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while scale > 1e-8:
            na, nb = a - scale * step[0], b - scale * step[1]
            new = loss(na, nb)
            if new <= current:
                break
            scale /= 2
        else:
            break
        a, b, improvement = float(na), float(nb), current - new
        current = new
        if improvement < 1e-10:
            break
    return {"a": a, "b": b}


def fit_isotonic(scores: np.ndarray | Sequence[float], y: np.ndarray | Sequence[int]) -> dict[
    str, Any
]:
    """Isotonic regression on the log-odds of the score: ``{"x", "y", "floor"}``."""
    from sklearn.isotonic import IsotonicRegression

    z = logit(scores)
    truth = np.asarray(y, dtype=np.float64)
    model = IsotonicRegression(increasing=True, out_of_bounds="clip").fit(z, truth)
    return {
        "x": [float(v) for v in model.X_thresholds_],
        "y": [float(v) for v in model.y_thresholds_],
        "floor": 1.0 / (truth.size + 2),
    }


def _fit(method: Method, scores: np.ndarray, y: np.ndarray, sha: str) -> Calibration:
    params = fit_platt(scores, y) if method == "platt" else fit_isotonic(scores, y)
    return Calibration(method=method, params=params, weights_sha256=sha)


def _stratified_groups(y: np.ndarray, k: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    groups = np.zeros(y.size, dtype=int)
    for value in (0, 1):
        members = np.flatnonzero(y == value)
        rng.shuffle(members)
        groups[members] = np.arange(members.size) % k
    return groups


def cross_fitted(
    method: Method, scores: np.ndarray, y: np.ndarray, groups: np.ndarray
) -> np.ndarray:
    """Each page's probability from ``method`` fitted on the pages of the other groups."""
    out = np.zeros(scores.size)
    for g in np.unique(groups):
        test = groups == g
        train = ~test
        if len(np.unique(y[train])) < 2:  # nothing to calibrate against: keep the score
            out[test] = np.clip(scores[test], 0.0, 1.0)
            continue
        out[test] = _fit(method, scores[train], y[train], "").apply(scores[test])
    return out


def fit_calibration(
    scores: np.ndarray | Sequence[float],
    y: np.ndarray | Sequence[int],
    *,
    weights_sha256: str,
    groups: np.ndarray | Sequence[int] | None = None,
    fitted_on: str = "",
) -> Calibration:
    """Fit Platt and isotonic on (score, abnormal?) pairs and keep one by the rule of the
    module docstring.  ``groups``: the cross-validation fold of each page (default: 5
    stratified groups, seed 0).  The record holds ECE / Brier / log-loss before, after
    (cross-fitted: honest) and after in-sample (the fit on the very pages: optimistic)."""
    s = np.asarray(scores, dtype=np.float64)
    truth = np.asarray(y, dtype=np.float64)
    _arrays(s, truth)
    if len(np.unique(truth)) < 2:
        raise ValueError("calibration needs both normal and abnormal pages")
    g = _stratified_groups(truth) if groups is None else np.asarray(groups)
    if g.shape != s.shape:
        raise ValueError("one group per score is needed")
    crossed = {m: cross_fitted(m, s, truth, g) for m in ("platt", "isotonic")}
    losses = {m: log_loss(p, truth) for m, p in crossed.items()}
    method: Method = (
        "isotonic" if losses["isotonic"] < losses["platt"] - ISOTONIC_MARGIN else "platt"
    )
    chosen = _fit(method, s, truth, weights_sha256)
    in_sample = chosen.apply(s)
    raw = np.clip(s, 0.0, 1.0)
    record = {
        "fitted_on": fitted_on,
        "n": int(s.size),
        "abnormal": int(truth.sum()),
        "groups": int(len(np.unique(g))),
        "rule": (
            "cross-fitted log-loss over the groups; isotonic only if lower than platt's by "
            f"more than {ISOTONIC_MARGIN} nats/page, else platt"
        ),
        "cross_fitted_log_loss": {m: round(v, 5) for m, v in losses.items()},
        "ece_before": round(expected_calibration_error(raw, truth), 5),
        "ece_after": round(expected_calibration_error(crossed[method], truth), 5),
        "ece_after_in_sample": round(expected_calibration_error(in_sample, truth), 5),
        "brier_before": round(brier_score(raw, truth), 5),
        "brier_after": round(brier_score(crossed[method], truth), 5),
        "log_loss_before": round(log_loss(raw, truth), 5),
        "log_loss_after": round(losses[method], 5),
        "ece_bins": ECE_BINS,
    }
    return Calibration(method=method, params=chosen.params, weights_sha256=weights_sha256,
                       record=record)


def plot_reliability(
    y: np.ndarray | Sequence[int],
    curves: dict[str, np.ndarray | Sequence[float]],
    path: Path,
    title: str = "",
) -> Path:
    """The reliability diagram (10 equal-width bins) of each named set of probabilities
    of abnormal, with its ECE in the legend, and the pages per bin below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, hist) = plt.subplots(
        2, 1, figsize=(5.6, 6.4), dpi=110, gridspec_kw={"height_ratios": [3, 1]}, sharex=True
    )
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    width = 1.0 / ECE_BINS
    for i, (name, probs) in enumerate(curves.items()):
        rows = reliability_bins(probs, y)
        xs = [r["mean_probability"] for r in rows if r["pages"]]
        ys = [r["share_abnormal"] for r in rows if r["pages"]]
        ece = expected_calibration_error(probs, y)
        ax.plot(xs, ys, marker="o", label=f"{name} (ECE {ece:.3f})")
        counts = [int(r["pages"] or 0) for r in rows]
        offset = (i - (len(curves) - 1) / 2) * width / (len(curves) + 1)
        hist.bar([(b + 0.5) * width + offset for b in range(ECE_BINS)], counts,
                 width=width / (len(curves) + 1), label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of pages that are abnormal")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title or "reliability (10 equal-width bins)")
    hist.set_xlabel("probability of abnormal")
    hist.set_ylabel("pages")
    hist.set_yscale("symlog")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
