"""Benchmark: ms per 12-lead page, ecg_dicom.render_page vs matplotlib, same run.

Both render the same calibrated signals of the four real ECGs (three carts in
../shared/data/dicom-ecg and pydicom's example) into a 1600 x 1137 RGB array
with the same layout (grid, 3 x 4 + rhythm strip, pulses, labels).  Pages stay
arrays: no PNG encoding is timed.  The matplotlib side builds one Figure per
page (what a pure render function would do), draws the grid and traces as
LineCollections (its fastest way) and reads the Agg buffer.

Run:  .venv/bin/python bench/bench_render.py [--repeat 30]
Prints a table and writes bench/results/render.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pydicom
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from pydicom import examples

from ecg_dicom.pages import (
    FRAME,
    PAGE_SIZE,
    PX_PER_MM,
    load_waveform,
    plan_rows,
    px_per_microvolt,
    px_per_second,
    render_page,
    row_baselines,
)
from ecg_dicom.records import Signals

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "dicom-ecg"


def matplotlib_page(signals: Signals) -> np.ndarray:
    """The same page drawn with matplotlib (Agg), returned as an RGB array."""
    width, height = PAGE_SIZE
    fig = Figure(figsize=(width / 100, height / 100), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    x0, y0, x1, y1 = FRAME
    Segment = tuple[tuple[float, float], tuple[float, float]]
    minor: list[Segment] = [((x, y0), (x, y1)) for x in np.arange(x0, x1, PX_PER_MM)]
    minor += [((x0, y), (x1, y)) for y in np.arange(y0, y1, PX_PER_MM)]
    major: list[Segment] = [((x, y0), (x, y1)) for x in np.arange(x0, x1, 5 * PX_PER_MM)]
    major += [((x0, y), (x1, y)) for y in np.arange(y0, y1, 5 * PX_PER_MM)]
    ax.add_collection(LineCollection(minor, colors="#e4e4e4", linewidths=0.3))
    ax.add_collection(LineCollection(major, colors="#b4b4b4", linewidths=0.5))
    ax.add_patch(matplotlib.patches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False,
                                              edgecolor="#e1b0b3", linewidth=1.5))
    rows = plan_rows(signals.leads)
    fs = signals.sampling_frequency
    segments = []
    for row, base in zip(rows, row_baselines(len(rows)), strict=True):
        top = base - 1000 * px_per_microvolt()
        segments.append(np.array([(69, base), (75.5, base), (75.5, top), (88.5, top),
                                  (88.5, base), (94, base)]))
        for channel, t0, t1, sx in row:
            i0, i1 = int(t0 * fs), min(int(t1 * fs) + 1, signals.data.shape[1])
            y = base - signals.data[channel, i0:i1] * px_per_microvolt()
            x = sx + np.arange(i1 - i0) * (px_per_second() / fs)
            segments.append(np.column_stack([x, y]))
            ax.text(sx + 3, base - 4, signals.leads[channel], fontsize=11, family="serif")
    ax.add_collection(LineCollection(segments, colors="black", linewidths=1.0,
                                     antialiaseds=True))
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def timings_ms(fn: Callable[[], object], repeat: int) -> list[float]:
    """Wall-clock ms of ``repeat`` calls after one warm-up call (caches, fonts)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "render.json")
    args = parser.parse_args()
    files = {p.parent.name: p for p in sorted(DATA.glob("*/ecg.dcm"))}
    files["pydicom-waveform"] = Path(examples.get_path("waveform"))
    rows: list[dict[str, float | str]] = []
    ours_ms: list[float] = []
    theirs_ms: list[float] = []
    print(f"{'file':<20} {'ours ms':>8} {'(min)':>7} {'mpl ms':>8} {'(min)':>7} {'ratio':>6}")
    for name, path in files.items():
        signals = load_waveform(pydicom.dcmread(path))
        ours_t = timings_ms(partial(render_page, signals), args.repeat)
        theirs_t = timings_ms(partial(matplotlib_page, signals), max(5, args.repeat // 3))
        ours, theirs = statistics.median(ours_t), statistics.median(theirs_t)
        ours_ms.append(round(ours, 2))
        theirs_ms.append(round(theirs, 2))
        rows.append({"file": name, "fs_hz": signals.sampling_frequency,
                     "ours_ms": round(ours, 2), "ours_min_ms": round(min(ours_t), 2),
                     "matplotlib_ms": round(theirs, 2),
                     "matplotlib_min_ms": round(min(theirs_t), 2),
                     "ratio": round(theirs / ours, 2)})
        print(f"{name:<20} {ours:8.2f} {min(ours_t):7.2f} {theirs:8.2f} {min(theirs_t):7.2f}"
              f" {theirs / ours:6.1f}")
    ours_all = statistics.median(ours_ms)
    theirs_all = statistics.median(theirs_ms)
    summary = {"ours_ms": round(ours_all, 2), "matplotlib_ms": round(theirs_all, 2),
               "ratio": round(theirs_all / ours_all, 2), "target_ms": 20.0, "target_ratio": 4.0}
    print(f"{'median':<20} {ours_all:8.2f} {'':7} {theirs_all:8.2f} {'':7}"
          f" {theirs_all / ours_all:6.1f}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    machine = {"python": platform.python_version(), "machine": platform.machine(),
               "load_average_1min": round(os.getloadavg()[0], 2),
               "processor": platform.processor(), "cpus": os.cpu_count(),
               "matplotlib": matplotlib.__version__, "page_px": list(PAGE_SIZE)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "files": rows, "machine": machine,
                                    "repeat": args.repeat}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
