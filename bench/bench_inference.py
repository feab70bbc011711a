"""Benchmark: ms per page of each runtime beside ultralytics' default ``predict``.

Every runtime runs in its own subprocess (so thread settings of one cannot leak
into another) on the same real validation pages, in the same invocation:

* ``ultralytics-default``: ``YOLO(weights).predict(page)`` as it comes (what the
  original application ran; ultralytics uses 1 thread on a 2-core machine);
* ``pytorch``: :class:`ecg_dicom.model.Detector`, PyTorch f32, all cores;
* ``onnx``: ONNX Runtime (CPU);
* ``openvino-auto``: OpenVINO, precision chosen by OpenVINO (bf16 on AVX-512 bf16 CPUs);
* ``openvino-f32``: OpenVINO forced to f32;
* ``openvino-int8``: the int8 IR NNCF makes from the f32 one, calibrated on synthetic
  pages the service renders (:mod:`ecg_dicom.model.synthetic`), never on these pages;
* ``default``: what the service runs with its embedded defaults on this machine
  (``model.runtime: auto``, resolved by :func:`ecg_dicom.model.resolve_runtime`).

The last lines say whether the default meets the project's target: at least 4x
ultralytics' ``predict`` with at least 99 % Normal/Abnormal agreement with PyTorch f32.

For each: median and mean ms/page (after two warm-up pages), speed-up over the
default path, and Normal/Abnormal agreement with PyTorch f32 (plus the largest
difference of the top-box confidence).  Pages are read by the service's own page
reader (:func:`ecg_dicom.pages.page_from_file`).  Prints a table and writes JSON to
``bench/results/``.

    .venv/bin/python bench/bench_inference.py --weights weights/ecg-yolov8m.pt \
        --pages runs/ds --n 74 --imgsz 832
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RUNTIMES = (
    "ultralytics-default",
    "pytorch",
    "onnx",
    "openvino-auto",
    "openvino-f32",
    "openvino-int8",
    "default",
)
#: The project's target for the default runtime (issue 3).
TARGET_SPEEDUP = 4.0
TARGET_AGREEMENT = 0.99
HERE = Path(__file__).resolve().parent


def page_files(source: Path, n: int) -> list[Path]:
    """The first ``n`` validation pages (a built dataset's split.json, or class folders)."""
    from ecg_dicom.train import collect_pages

    pages = collect_pages(source, "val")
    # Interleave classes so a short run still sees every class.
    by_class: dict[str, list[Path]] = {}
    for name, path in pages:
        by_class.setdefault(name, []).append(path)
    ordered: list[Path] = []
    while any(by_class.values()) and len(ordered) < n:
        for name in list(by_class):
            if by_class[name] and len(ordered) < n:
                ordered.append(by_class[name].pop(0))
    return ordered


def run_worker(
    runtime: str, weights: Path, files: list[Path], imgsz: int, conf: float
) -> dict[str, Any]:
    """Time one runtime on the pages (runs inside the subprocess)."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ecg_dicom.model import decide, weights_checksum
    from ecg_dicom.pages import page_from_file
    from ecg_dicom.records import Detection

    images = [page_from_file(p).image for p in files]
    checksum = weights_checksum(weights)
    if runtime == "ultralytics-default":
        from ultralytics import YOLO

        model = YOLO(str(weights))
        resolved = "pytorch f32 (ultralytics, 1 thread)"

        def infer(image: Any) -> Any:
            found: Any = model.predict(image[..., ::-1], imgsz=imgsz, conf=conf, verbose=False)
            result = found[0]
            names = result.names
            boxes = [
                Detection(
                    names[int(c)], float(s), tuple(float(v) for v in xyxy)  # type: ignore[arg-type]
                )
                for xyxy, s, c in zip(
                    result.boxes.xyxy.tolist(),
                    result.boxes.conf.tolist(),
                    result.boxes.cls.tolist(),
                    strict=True,
                )
            ]
            return decide(boxes, model_name="default", model_version=checksum)
    else:
        from ecg_dicom.config import ModelSettings
        from ecg_dicom.model import Detector

        name: str
        precision: str
        if runtime == "default":  # the embedded defaults: model.runtime auto
            defaults = ModelSettings()
            name, precision = defaults.runtime, defaults.precision
        elif runtime == "openvino-int8":  # a runtime of its own (the int8 IR), not a precision
            name, precision = runtime, "auto"
        else:
            name, _, precision = runtime.partition("-")
        settings = ModelSettings(weights=weights, sha256=checksum, imgsz=imgsz, conf=conf,
                                 runtime=name, precision=precision or "auto")  # type: ignore[arg-type]
        detector = Detector(settings)
        resolved = f"{detector.runtime} {detector.precision}"

        def infer(image: Any) -> Any:
            return decide(detector.detections(image), model_name="bench", model_version=checksum)

    for image in images[:2]:
        infer(image)
    times: list[float] = []
    results = []
    for image in images:
        start = time.perf_counter()
        results.append(infer(image))
        times.append(1000 * (time.perf_counter() - start))
    import torch

    return {
        "runtime": runtime,
        "resolved": resolved,
        "torch_threads": torch.get_num_threads(),
        "ms_median": statistics.median(times),
        "ms_mean": statistics.fmean(times),
        "labels": [r.label for r in results],
        "classes": [r.class_name for r in results],
        "confidences": [r.confidence for r in results],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=Path("weights/ecg-yolov8m.pt"))
    parser.add_argument("--pages", type=Path, default=Path("runs/ds"),
                        help="a built dataset (its val split) or class folders")
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--imgsz", type=int, default=None,
                        help="default: model.imgsz of the configuration (the trained size)")
    parser.add_argument("--conf", type=float, default=0.05)
    parser.add_argument("--runtimes", default=",".join(RUNTIMES))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--files", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.imgsz is None:
        from ecg_dicom.config import ModelSettings

        args.imgsz = ModelSettings().imgsz

    if args.worker:
        files = [Path(p) for p in json.loads(args.files)]
        print(json.dumps(run_worker(args.worker, args.weights, files, args.imgsz, args.conf)))
        return 0

    files = page_files(args.pages, args.n)
    rows: dict[str, dict[str, Any]] = {}
    for runtime in args.runtimes.split(","):
        cmd = [sys.executable, __file__, "--worker", runtime, "--weights", str(args.weights),
               "--imgsz", str(args.imgsz), "--conf", str(args.conf),
               "--files", json.dumps([str(f) for f in files])]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            print(f"{runtime}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        rows[runtime] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{runtime}: {rows[runtime]['ms_median']:.0f} ms/page", file=sys.stderr)

    base = rows.get("ultralytics-default")
    ref = rows.get("pytorch")
    from ecg_dicom.train import hardware_description

    hardware = hardware_description()
    print(f"\n{len(files)} pages, imgsz {args.imgsz}, {hardware['cpu_count']} CPUs, "
          f"{hardware['cpu']}")
    print(f"{'runtime':<20} {'ms/page':>8} {'mean':>8} {'speed-up':>9} {'agree N/A':>10} "
          f"{'max dconf':>10}  runs as")
    for name, row in rows.items():
        if base:
            row["speedup_vs_default"] = base["ms_median"] / row["ms_median"]
        if ref:
            n = len(files)
            row["agreement_vs_pytorch_f32"] = sum(
                a == b for a, b in zip(ref["labels"], row["labels"], strict=True)) / n
            row["class_agreement_vs_pytorch_f32"] = sum(
                a == b for a, b in zip(ref["classes"], row["classes"], strict=True)) / n
            row["max_conf_diff_vs_pytorch_f32"] = max(
                abs(a - b) for a, b in zip(ref["confidences"], row["confidences"], strict=True))
        print(f"{name:<20} {row['ms_median']:>8.0f} {row['ms_mean']:>8.0f} "
              f"{row.get('speedup_vs_default', float('nan')):>8.2f}x "
              f"{100 * row.get('agreement_vs_pytorch_f32', float('nan')):>9.1f}% "
              f"{row.get('max_conf_diff_vs_pytorch_f32', float('nan')):>10.4f}  {row['resolved']}")
    default = rows.get("default")
    if default and base and ref:
        met = (default["speedup_vs_default"] >= TARGET_SPEEDUP
               and default["agreement_vs_pytorch_f32"] >= TARGET_AGREEMENT)
        print(f"\ndefault runtime here: {default['resolved']}: "
              f"{default['speedup_vs_default']:.2f}x ultralytics' predict, "
              f"{100 * default['agreement_vs_pytorch_f32']:.1f} % agreement with PyTorch f32 "
              f"(target >= {TARGET_SPEEDUP:.0f}x and >= {100 * TARGET_AGREEMENT:.0f} %): "
              f"{'met' if met else 'NOT met'}")
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = results / f"inference-{stamp}.json"
    path.write_text(json.dumps({
        "weights": str(args.weights), "imgsz": args.imgsz, "conf": args.conf,
        "pages": [str(f) for f in files], "hardware": hardware, "results": rows,
    }, indent=1))
    print(f"\nwritten {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
