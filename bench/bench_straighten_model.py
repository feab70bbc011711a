"""Benchmark: a model's Normal/Abnormal call on tilted pages, as sent and once straightened.

Each page (the normal class of ../shared/data/ecg-images, or with ``--folds`` the test pages
of one fold) is tilted by each angle (cv2.warpAffine about its centre, white corners) and
given to the detector twice: as it is, and after :func:`ecg_dicom.pages.straighten.straighten`
(what ``Pipeline.read_file`` does).  Prints, per tilt, how many calls are right either way
and how many straightened pages :func:`ecg_dicom.pages.chart_check.chart_problem` turns away.

Run (PyTorch f32, a few seconds per call on a 2-core CPU):
  .venv/bin/python bench/bench_straighten_model.py --weights old.pt --step 7 --tilts 0,7,10
  .venv/bin/python bench/bench_straighten_model.py --weights runs/folds/fold0.pt \\
      --folds runs/folds/folds.json --fold 0 --step 5
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import cv2
import numpy as np

from ecg_dicom.config import ModelSettings
from ecg_dicom.model import Detector
from ecg_dicom.pages.chart_check import chart_problem
from ecg_dicom.pages.straighten import straighten
from ecg_dicom.records import NORMAL_CLASS, Page

ROOT = Path(__file__).resolve().parents[1]
PAGES_DIR = ROOT.parent / "shared" / "data" / "ecg-images"


def tilted(rgb: np.ndarray, degrees: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), degrees, 1.0)
    return cv2.warpAffine(rgb, matrix, (w, h), flags=cv2.INTER_LINEAR,
                          borderValue=(255, 255, 255))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=ROOT / "weights" / "ecg-yolov8m.pt")
    parser.add_argument("--folds", type=Path, help="folds.json: use the test pages of --fold")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--step", type=int, default=7, help="every n-th page")
    parser.add_argument("--tilts", default="0,7,10")
    args = parser.parse_args()
    if args.folds:
        folds = json.loads(args.folds.read_text())["folds"]
        pages = [(cls, PAGES_DIR / rel) for cls, rel in folds[args.fold]["test"]]
    else:
        pages = [(NORMAL_CLASS, p) for p in sorted((PAGES_DIR / "normal").glob("*.jpg"))]
    pages = pages[:: args.step]
    detector = Detector(ModelSettings(
        weights=args.weights, sha256=hashlib.sha256(args.weights.read_bytes()).hexdigest(),
        runtime="pytorch"))
    started = time.perf_counter()
    print(f"{args.weights}: {len(pages)} pages")
    for degrees in (float(t) for t in args.tilts.split(",")):
        as_sent = straightened = turned_away = 0
        for class_name, path in pages:
            bgr = cv2.imread(str(path))
            assert bgr is not None, path
            page = np.ascontiguousarray(bgr[:, :, ::-1])
            picture = tilted(page, degrees) if degrees else page
            truth = "Normal" if class_name == NORMAL_CLASS else "Abnormal"
            raw = detector.detect(Page(picture, "image")).label
            done = straighten(picture)
            fixed = raw if done.page is picture else detector.detect(Page(done.page, "image")).label
            as_sent += raw == truth
            straightened += fixed == truth
            turned_away += chart_problem(done.page) is not None
        print(f"tilt {degrees:g} deg: right as sent {as_sent}/{len(pages)}, "
              f"straightened {straightened}/{len(pages)}, turned away {turned_away} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
