"""Build an ultralytics YOLO dataset from labelled ECG pages.

Two input layouts are accepted:

* **class folders** (the layout of ``shared/data/ecg-images``): ``heart_block/``,
  ``history_mi/``, ``mi/``, ``normal/``, each holding page images.  The pages carry no
  boxes, so one box per page is made automatically: the chart frame, found as the
  bounding box of the non-white (pink grid and trace) pixels.  The pages are split
  into train / validation by image, stratified by class, with a seeded generator so
  the same split comes back every time.
* **a Roboflow YOLO export**: ``train/`` and ``valid/`` (optionally ``test/``) each
  with ``images/`` and ``labels/``, and a ``data.yaml`` whose ``names`` are the
  original application's class names.  Its boxes and split are kept; only the class
  indices are remapped to the order of :data:`ecg_dicom.records.CLASS_NAMES`.

The output always has ``images/{train,val}``, ``labels/{train,val}``, ``data.yaml``
with the names in ``CLASS_NAMES`` order, and ``split.json`` recording which source
file went where (the split is part of what was trained, so it is written down).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from ecg_dicom.model import resize_page
from ecg_dicom.records import CLASS_NAMES

#: Source folder name -> class name (index in CLASS_NAMES is the YOLO class id).
FOLDER_CLASSES: dict[str, str] = {
    "heart_block": "ECG HB",
    "history_mi": "History_MI",
    "mi": "MI-ECG",
    "normal": "Normal-ECG",
}

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})

#: ``progress(done, total)``: called after each page written (the CLI's progress bar).
Progress = Callable[[int, int], None] | None

#: A pixel is "ink" (grid, frame or trace) when its darkest channel is this far below white.
INK_DELTA = 25
#: A row / column belongs to the chart when at least this fraction of it is ink
#: (ignores isolated JPEG noise and stray marks on the white margin).
LINE_FRACTION = 0.02


@dataclass(frozen=True)
class DatasetSummary:
    """What :func:`build_dataset` wrote: counts per split and class, and where."""

    out: Path
    data_yaml: Path
    layout: str  # "folders" or "roboflow"
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    seed: int = 0
    val_fraction: float = 0.2

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready view for the CLI and the training record."""
        return {
            "out": str(self.out),
            "data_yaml": str(self.data_yaml),
            "layout": self.layout,
            "counts": self.counts,
            "seed": self.seed,
            "val_fraction": self.val_fraction,
        }


def find_chart_frame(image: np.ndarray) -> tuple[int, int, int, int]:
    """The chart frame (x0, y0, x1, y1), exclusive ends, of an RGB page.

    The prepared pages are white outside the chart, and the chart is a pink grid
    with black traces, so the frame is the bounding box of the rows and columns
    that hold enough non-white pixels.  A page with no ink gives the whole page.
    """
    if image.ndim == 2:
        darkest = image
    else:
        darkest = image[..., :3].min(axis=2)
    ink = (255 - darkest.astype(np.int16)) > INK_DELTA
    height, width = ink.shape
    rows = np.nonzero(ink.sum(axis=1) >= LINE_FRACTION * width)[0]
    cols = np.nonzero(ink.sum(axis=0) >= LINE_FRACTION * height)[0]
    if rows.size == 0 or cols.size == 0:
        return 0, 0, width, height
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def yolo_label(class_id: int, frame: tuple[int, int, int, int], width: int, height: int) -> str:
    """One YOLO label line (class cx cy w h, normalised to the page)."""
    x0, y0, x1, y1 = frame
    cx = (x0 + x1) / 2.0 / width
    cy = (y0 + y1) / 2.0 / height
    return f"{class_id} {cx:.6f} {cy:.6f} {(x1 - x0) / width:.6f} {(y1 - y0) / height:.6f}"


def stratified_split(
    items: Mapping[str, Sequence[Path]], val_fraction: float, seed: int
) -> tuple[list[tuple[str, Path]], list[tuple[str, Path]]]:
    """Split each class's files into (train, val) with the same seeded shuffle.

    Each class with at least two files gives at least one validation file and keeps
    at least one for training, so every class is seen on both sides.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    rng = random.Random(seed)
    train: list[tuple[str, Path]] = []
    val: list[tuple[str, Path]] = []
    for name in CLASS_NAMES:
        files = sorted(items.get(name, ()))
        rng.shuffle(files)
        n_val = round(len(files) * val_fraction)
        if val_fraction > 0 and len(files) >= 2:
            n_val = min(max(n_val, 1), len(files) - 1)
        val += [(name, f) for f in files[:n_val]]
        train += [(name, f) for f in files[n_val:]]
    return train, val


#: JPEG quality of pages written at a new width (``build_dataset(width=...)``).
RESIZED_JPEG_QUALITY = 90


def resize_to_width(image: np.ndarray, width: int) -> np.ndarray:
    """``image`` scaled to ``width`` pixels wide, aspect kept, with area averaging.

    The same :func:`ecg_dicom.model.resize_page` the service shrinks a page with, so
    a dataset written at the network's width shows the model exactly the pixels the
    service will.
    """
    height, old_width = image.shape[:2]
    if width == old_width:
        return image
    return resize_page(image, width, max(round(height * width / old_width), 1))


def _place(
    src: Path, dst: Path, copy: bool, width: int | None = None, rgb: np.ndarray | None = None
) -> None:
    """Link, copy or (``width``) write ``src`` scaled; ``rgb``: its pixels, when already read."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    if width:
        import cv2

        image = (
            cv2.imread(str(src), cv2.IMREAD_COLOR)
            if rgb is None
            else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        )
        if image is None:
            raise ValueError(f"{src} is not an image OpenCV can read")
        params = (
            [cv2.IMWRITE_JPEG_QUALITY, RESIZED_JPEG_QUALITY]
            if dst.suffix.lower() in {".jpg", ".jpeg"}
            else []
        )
        if not cv2.imwrite(str(dst), resize_to_width(image, width), params):
            raise OSError(f"could not write {dst}")
    elif copy:
        shutil.copy2(src, dst)
    else:
        os.symlink(src.resolve(), dst)


def _write_data_yaml(out: Path, splits: Iterable[str]) -> Path:
    data = {"path": str(out.resolve()), "names": dict(enumerate(CLASS_NAMES))}
    for split in splits:
        data[split] = f"images/{split}"
    path = out / "data.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def images_in(folder: Path) -> list[Path]:
    """The page images directly in ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _build_from_folders(
    src: Path, out: Path, val_fraction: float, seed: int, copy: bool, page_width: int | None,
    progress: Progress = None,
) -> DatasetSummary:
    items: dict[str, list[Path]] = {}
    for folder, name in FOLDER_CLASSES.items():
        if (src / folder).is_dir():
            items[name] = images_in(src / folder)
    if not any(items.values()):
        raise FileNotFoundError(
            f"{src} has none of the class folders {sorted(FOLDER_CLASSES)} with images in them"
        )
    train, val = stratified_split(items, val_fraction, seed)
    counts: dict[str, dict[str, int]] = {}
    record: dict[str, list[dict[str, object]]] = {}
    for split, members in (("train", train), ("val", val)):
        counts[split] = {name: 0 for name in CLASS_NAMES}
        record[split] = []
        for name, path in members:
            with Image.open(path) as im:
                rgb = np.asarray(im.convert("RGB"))
            frame = find_chart_frame(rgb)
            height, width = rgb.shape[:2]
            _place(path, out / "images" / split / path.name, copy, page_width, rgb)
            label = yolo_label(CLASS_NAMES.index(name), frame, width, height)
            label_path = out / "labels" / split / (path.stem + ".txt")
            label_path.parent.mkdir(parents=True, exist_ok=True)
            label_path.write_text(label + "\n", encoding="utf-8")
            counts[split][name] += 1
            record[split].append({"file": str(path), "class": name, "frame": list(frame)})
            if progress is not None:
                progress(sum(map(len, record.values())), len(train) + len(val))
    (out / "split.json").write_text(
        json.dumps({"seed": seed, "val_fraction": val_fraction, **record}, indent=1),
        encoding="utf-8",
    )
    data_yaml = _write_data_yaml(out, ("train", "val"))
    return DatasetSummary(out, data_yaml, "folders", counts, seed, val_fraction)


def _remap_table(names: object) -> dict[int, int]:
    """Roboflow class index -> our class index, by name (case and spacing tolerant)."""
    if isinstance(names, dict):
        listed = [names[k] for k in sorted(names)]
    elif isinstance(names, list):
        listed = names
    else:
        # A bad data file, not a programming error: ValueError, which the CLI reports.
        raise ValueError("the Roboflow data.yaml has no list of class names")  # noqa: TRY004

    def key(s: str) -> str:
        return "".join(ch for ch in s.lower() if ch.isalnum())

    ours = {key(n): i for i, n in enumerate(CLASS_NAMES)}
    table: dict[int, int] = {}
    for idx, name in enumerate(listed):
        if key(str(name)) not in ours:
            raise ValueError(
                f"class {name!r} of the Roboflow export is not one of {list(CLASS_NAMES)}"
            )
        table[idx] = ours[key(str(name))]
    return table


def _build_from_roboflow(
    src: Path, out: Path, copy: bool, page_width: int | None, progress: Progress = None
) -> DatasetSummary:
    meta = yaml.safe_load((src / "data.yaml").read_text(encoding="utf-8")) or {}
    table = _remap_table(meta.get("names"))
    counts: dict[str, dict[str, int]] = {}
    splits = [("train", "train"), ("valid", "val"), ("test", "test")]
    written: list[str] = []
    total = sum(len(images_in(src / f / "images")) for f, _ in splits
                if (src / f / "images").is_dir())
    done = 0
    for folder, split in splits:
        images_dir = src / folder / "images"
        if not images_dir.is_dir():
            continue
        written.append(split)
        counts[split] = {name: 0 for name in CLASS_NAMES}
        for image in images_in(images_dir):
            _place(image, out / "images" / split / image.name, copy, page_width)
            src_label = src / folder / "labels" / (image.stem + ".txt")
            lines: list[str] = []
            if src_label.exists():
                for raw in src_label.read_text(encoding="utf-8").splitlines():
                    parts = raw.split()
                    if not parts:
                        continue
                    new_id = table[int(parts[0])]
                    lines.append(" ".join([str(new_id), *parts[1:]]))
                    counts[split][CLASS_NAMES[new_id]] += 1
            label_path = out / "labels" / split / (image.stem + ".txt")
            label_path.parent.mkdir(parents=True, exist_ok=True)
            label_path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
            done += 1
            if progress is not None:
                progress(done, total)
    if "train" not in written or "val" not in written:
        raise FileNotFoundError(f"{src} is a Roboflow export without train/ and valid/ images")
    data_yaml = _write_data_yaml(out, written)
    return DatasetSummary(out, data_yaml, "roboflow", counts, 0, 0.0)


def build_dataset(
    src: Path,
    out: Path,
    val_fraction: float = 0.2,
    seed: int = 0,
    *,
    copy: bool = False,
    width: int | None = None,
    progress: Progress = None,
) -> DatasetSummary:
    """Turn ``src`` (class folders or a Roboflow YOLO export) into a YOLO dataset at ``out``.

    Images are symlinked (``copy=False``, the default: the sources stay the single
    copy) or copied; with ``width`` they are written scaled to that width
    (:func:`resize_to_width`; boxes are normalised, so labels and split are the same
    at any width).  A dataset at the training ``imgsz`` is small enough to carry to a
    GPU machine and spares ultralytics its own (bilinear) shrinking.  ``out`` is cleared
    of earlier images and labels first, so a rebuild with another seed leaves no stale
    files behind.
    """
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise FileNotFoundError(f"dataset source {src} is not a directory")
    for sub in ("images", "labels"):
        shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    if (src / "data.yaml").exists() and (src / "train").is_dir():
        return _build_from_roboflow(src, out, copy, width, progress)
    return _build_from_folders(src, out, val_fraction, seed, copy, width, progress)
