"""The tables of ``evaluate --folds`` as text (:func:`format_folds_report`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ecg_dicom.train.fold_setup import PREDICTIONS_FILE


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
