"""Compare int8 quantisation recipes against f32 on pages the choice is not made on.

How the shipped int8 recipe (``ecg_dicom.model.derive.quantize_model`` defaults) was
chosen, re-runnable.  Every recipe is calibrated on the service's 48 synthetic
calibration pages (``int8_calibration_pages(48, seed=0)``) and compared, page by page,
with the f32 model through OpenVINO f32 (which gives PyTorch f32's label on every
validation page, largest confidence difference < 0.0001) on four sets:

* ``synthetic``: 120 *other* synthetic ECGs (seed 7), rendered by the service: never
  used for calibration nor for choosing a checkpoint -- the independent judge;
* ``real``: the real DICOM ECGs of ``shared/data/dicom-ecg`` and pydicom's example,
  rendered by the service;
* ``train``: the training pages (the model is sure of them: a weak judge);
* ``val``: the validation pages (what the project's target is stated on).

For each: pages with the same Normal / Abnormal label, the same top class, and the
largest and mean change of the abnormal score and of the top-box confidence; plus
ms per page of the network alone.  Also OpenVINO's own bf16 for comparison.

    .venv/bin/python scripts/int8_recipes.py --data runs/ds --out bench/results/int8-recipes.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (608, 832)
RECIPES: dict[str, dict[str, bool]] = {
    "fast-bias-correction": {"fast_bias_correction": True},
    "full-bias-correction (shipped)": {"fast_bias_correction": False},
    "fast, head convolutions f32": {"fast_bias_correction": True, "head_f32": True},
    "full, head convolutions f32": {"fast_bias_correction": False, "head_f32": True},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "runs/ds", help="a built dataset")
    parser.add_argument("--weights", type=Path, default=ROOT / "weights/ecg-yolov8m.pt")
    parser.add_argument("--cache", type=Path, default=ROOT / "var/model-cache")
    parser.add_argument("--synthetic", type=int, default=120)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import openvino as ov
    from pydicom import examples

    from ecg_dicom.model import (
        INT8_CALIBRATION_PAGES,
        blank_outside_frame,
        boxes_on_page,
        cached_export,
        decide,
        int8_calibration_pages,
        letterbox,
        quantize_model,
        weights_checksum,
    )
    from ecg_dicom.pages import page_from_file
    from ecg_dicom.train import collect_pages

    checksum = weights_checksum(args.weights)
    f32_dir = cached_export(args.weights, checksum, "openvino", SHAPE, args.cache)
    core = ov.Core()
    base = core.read_model(str(next(f32_dir.glob("*.xml"))))

    def tensors(
        images: list[np.ndarray],
    ) -> list[tuple[np.ndarray, float, tuple[float, float], tuple[int, int]]]:
        return [(*letterbox(img, SHAPE), img.shape[:2]) for img in images]

    reals = sorted((ROOT.parent / "shared/data/dicom-ecg").glob("*/ecg.dcm"))
    reals.append(Path(examples.get_path("waveform")))
    real_pages = [page_from_file(p) for p in reals]
    sets = {
        "synthetic": tensors(list(int8_calibration_pages(args.synthetic, seed=7))),
        "real": tensors([blank_outside_frame(p.image, p.frame) for p in real_pages]),
        "train": tensors([page_from_file(p).image for _, p in collect_pages(args.data, "train")]),
        "val": tensors([page_from_file(p).image for _, p in collect_pages(args.data, "val")]),
    }
    calibration = [
        letterbox(page, SHAPE)[0] for page in int8_calibration_pages(INT8_CALIBRATION_PAGES)
    ]

    def run(model: Any, data: list[Any], f32: bool = False) -> tuple[list[Any], float]:
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if f32:
            config["INFERENCE_PRECISION_HINT"] = ov.Type.f32
        request = core.compile_model(model, "CPU", config).create_infer_request()
        results, times = [], []
        for tensor, scale, pad, shape in data:
            start = time.perf_counter()
            raw = np.asarray(next(iter(request.infer({0: tensor}).values())))
            times.append(1000 * (time.perf_counter() - start))
            results.append(decide(boxes_on_page(raw, scale, pad, shape, 0.05), model_name="m",
                                  model_version=checksum))
        return results, statistics.median(times)

    reference = {name: run(base, data, f32=True)[0] for name, data in sets.items()}

    def compare(model: Any) -> dict[str, Any]:
        row: dict[str, Any] = {}
        times = []
        for name, data in sets.items():
            got, ms = run(model, data)
            times.append(ms)
            ref = reference[name]
            pairs = list(zip(ref, got, strict=True))
            dscore = [abs(a.abnormal_score - b.abnormal_score) for a, b in pairs]
            dconf = [abs(a.confidence - b.confidence) for a, b in pairs]
            row[name] = {
                "pages": len(ref),
                "same_label": sum(a.label == b.label for a, b in pairs),
                "same_class": sum(a.class_name == b.class_name for a, b in pairs),
                "max_dscore": max(dscore), "mean_dscore": float(np.mean(dscore)),
                "max_dconf": max(dconf), "mean_dconf": float(np.mean(dconf)),
            }
        row["ms_network"] = statistics.median(times)
        return row

    report: dict[str, Any] = {"weights": str(args.weights), "sha256": checksum, "rows": {}}
    report["rows"]["OpenVINO auto (bf16 where native)"] = compare(base)
    for name, recipe in RECIPES.items():
        started = time.perf_counter()
        quantized = quantize_model(base.clone(), calibration, **recipe)
        row = compare(quantized)
        row["derive_s"] = round(time.perf_counter() - started, 1)
        report["rows"][name] = row
        print(f"done: {name}", file=sys.stderr)

    print(f"{'recipe':<36} {'ms':>5}  " + "  ".join(f"{k:>22}" for k in sets))
    for name, row in report["rows"].items():
        cells = [
            f"{row[k]['same_label']}/{row[k]['pages']} d={row[k]['mean_dscore']:.4f}" for k in sets
        ]
        print(f"{name:<36} {row['ms_network']:>5.0f}  " + "  ".join(f"{c:>22}" for c in cells))
    print("(same Normal/Abnormal label as f32 / pages, d = mean change of the abnormal score)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
        print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
