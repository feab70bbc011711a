"""Benchmark: how exactly and how fast pictures are straightened and checked.

Over the real training pages (../shared/data/ecg-images, 371 pages, 1600 x 1137):

* each page tilted by known angles (cv2.warpAffine about its centre, same canvas,
  white corners): the error of the tilt :func:`ecg_dicom.pages.straighten.straighten`
  finds (median, 95th percentile, max, in degrees) and the milliseconds it takes;
* each page keystoned (its top edge shortened by 3 % of the width at each end,
  on a white margin) and tilted by 4 degrees: how many come back "perspective" and
  the largest rise left along a side of the pink chart frame (px, end to end);
* the pages as they are: how many come back unchanged, and
  :func:`ecg_dicom.pages.chart_check.chart_problem` on them (how many are turned
  away: should be none) with its milliseconds.

Pages are decoded before the clock starts.  On a 2-core machine shared with other
work the milliseconds move with the load; the median is the figure to quote.

Run:  .venv/bin/python bench/bench_straighten.py [--step 1] [--tilts 0,3,5,7,10,15]
Prints a table and writes bench/results/straighten.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np

from ecg_dicom.pages.chart_check import chart_problem
from ecg_dicom.pages.straighten import straighten

ROOT = Path(__file__).resolve().parents[1]
PAGES_DIR = ROOT.parent / "shared" / "data" / "ecg-images"
WHITE = (255, 255, 255)


def tilted(rgb: np.ndarray, degrees: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), degrees, 1.0)
    return cv2.warpAffine(rgb, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=WHITE)


def keystoned(rgb: np.ndarray, top: float = 0.03, degrees: float = 4.0) -> np.ndarray:
    padded = cv2.copyMakeBorder(rgb, 160, 160, 160, 160, cv2.BORDER_CONSTANT, value=WHITE)
    h, w = padded.shape[:2]
    source = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    moved = np.array([[top * w, 0], [w - top * w, 0], [w, h], [0, h]], dtype=np.float32)
    rotation = np.vstack([cv2.getRotationMatrix2D((w / 2.0, h / 2.0), degrees, 1.0), [0, 0, 1]])
    matrix = rotation @ cv2.getPerspectiveTransform(source, moved)
    return cv2.warpPerspective(padded, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=WHITE)


def frame_rise(rgb: np.ndarray) -> float:
    """The largest rise (px, end to end) along a side of the pink chart frame."""
    pink = (rgb[..., 0].astype(np.int16) - rgb[..., 1]) > 25
    ys, xs = np.nonzero(pink)
    frame = pink[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    worst = 0.0
    for side in (frame.T, frame[::-1].T, frame, frame[:, ::-1]):
        lo, hi = side.shape[0] // 8, side.shape[0] - side.shape[0] // 8
        depth = np.argmax(side[lo:hi], axis=1).astype(float)
        hit = side[lo:hi].any(axis=1)
        near = hit & (np.abs(depth - np.median(depth[hit])) <= 15)
        along = np.arange(lo, hi)[near]
        slope = np.polyfit(along, depth[near], 1)[0]
        worst = max(worst, abs(float(slope)) * side.shape[0])
    return worst


CPU_MS: list[float] = []


def timed(fn, *args):  # type: ignore[no-untyped-def]
    """``fn(*args)`` and its wall milliseconds; its process CPU milliseconds (all
    OpenCV threads) go to :data:`CPU_MS`, a figure the machine's load moves less."""
    started, cpu = time.perf_counter(), time.process_time()
    out = fn(*args)
    CPU_MS.append((time.process_time() - cpu) * 1000.0)
    return out, (time.perf_counter() - started) * 1000.0


def cpu_median() -> float:
    median = float(np.median(CPU_MS))
    CPU_MS.clear()
    return median


def summary(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=float)
    return {"median": float(np.median(v)), "p95": float(np.percentile(v, 95)),
            "max": float(v.max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", type=int, default=1, help="every n-th page (default: all)")
    parser.add_argument("--tilts", default="0,3,-3,5,7,-7,10,15")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "straighten.json")
    args = parser.parse_args()
    paths = sorted(PAGES_DIR.glob("*/*.jpg"))[:: args.step]
    pages = []
    for path in paths:
        bgr = cv2.imread(str(path))
        assert bgr is not None, path
        pages.append(np.ascontiguousarray(bgr[:, :, ::-1]))
    rows: dict[str, dict[str, object]] = {}
    print(f"{len(pages)} pages, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs")
    print(f"{'condition':<22}{'methods':<34}{'angle error (deg)':<36}"
          f"{'wall ms median / p95':>22}{'CPU ms':>8}")
    for degrees in (float(t) for t in args.tilts.split(",")):
        errors: list[float] = []
        ms: list[float] = []
        methods: dict[str, int] = {}
        for page in pages:
            picture = tilted(page, degrees) if degrees else page
            done, elapsed = timed(straighten, picture)
            errors.append(abs(done.angle_deg - degrees))
            ms.append(elapsed)
            methods[done.method] = methods.get(done.method, 0) + 1
            if not degrees:
                methods["unchanged"] = methods.get("unchanged", 0) + (done.page is page)
        err, speed, cpu = summary(errors), summary(ms), cpu_median()
        rows[f"tilt {degrees:g}"] = {"methods": methods, "angle_error_deg": err, "ms": speed,
                                     "cpu_ms_median": cpu}
        print(f"{'tilt ' + format(degrees, 'g') + ' deg':<22}{json.dumps(methods):<34}"
              f"median {err['median']:.3f} p95 {err['p95']:.3f} max {err['max']:.3f}  "
              f"{speed['median']:>12.1f} / {speed['p95']:<6.1f}{cpu:>8.1f}")
    rises: list[float] = []
    ms, methods = [], {}
    CPU_MS.clear()
    for page in pages:
        done, elapsed = timed(straighten, keystoned(page))
        ms.append(elapsed)
        methods[done.method] = methods.get(done.method, 0) + 1
        rises.append(frame_rise(done.page))
    rise, speed, cpu = summary(rises), summary(ms), cpu_median()
    rows["keystone 3 % + tilt 4"] = {"methods": methods, "frame_rise_px": rise, "ms": speed,
                                     "cpu_ms_median": cpu}
    print(f"{'keystone 3% + tilt 4':<22}{json.dumps(methods):<34}"
          f"{'frame rise px: median ' + format(rise['median'], '.1f'):<26}"
          f"max {rise['max']:.1f}  {speed['median']:>12.1f} / {speed['p95']:<6.1f}{cpu:>8.1f}")
    turned_away: list[str] = []
    ms = []
    CPU_MS.clear()
    for path, page in zip(paths, pages, strict=True):
        reason, elapsed = timed(chart_problem, page)
        ms.append(elapsed)
        if reason is not None:
            turned_away.append(f"{path.name}: {reason}")
    speed, cpu = summary(ms), cpu_median()
    rows["chart_problem on the pages"] = {"turned_away": turned_away, "ms": speed,
                                          "cpu_ms_median": cpu}
    print(f"{'chart_problem':<22}{f'{len(turned_away)} of {len(pages)} turned away':<70}"
          f"{speed['median']:>12.1f} / {speed['p95']:<6.1f}{cpu:>8.1f}")
    # speed with the load of other work taken out as far as it can be: the fastest of
    # five runs of each page (20 pages), per case
    fastest: dict[str, object] = {}
    cases = ("straight page", "tilt 7", "keystone + tilt 4", "chart_problem")
    few = pages[:: max(1, len(pages) // 20)][:20]
    for name in cases:
        best = []
        for page in few:
            picture = tilted(page, 7.0) if name == "tilt 7" else (
                keystoned(page) if name.startswith("keystone") else page)
            run = straighten if name != "chart_problem" else chart_problem
            best.append(min(timed(run, picture)[1] for _ in range(5)))
        CPU_MS.clear()
        fastest[name] = float(np.median(best))
    rows["fastest of 5 runs, median over pages (ms)"] = fastest
    print("fastest of 5 runs, median over", len(few), "pages (ms):",
          ", ".join(f"{k} {v:.1f}" for k, v in fastest.items()))
    machine = {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
               "opencv": cv2.__version__, "opencv_threads": cv2.getNumThreads(),
               "load_average": os.getloadavg()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"pages": len(pages), "rows": rows, "machine": machine},
                                   indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
