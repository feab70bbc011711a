"""What ``evaluate --folds`` reads and keeps: the folds and their models, the prediction
cache, the pipeline per model, and the page helpers of the robustness run.

* :func:`load_setup`: ``DIR/folds.json`` (:mod:`ecg_dicom.train.folds`), the page folder
  and every fold model, each checked to exist (a missing one is named);
  :func:`single_model_setup`: one model on a folder of class folders;
* :class:`PredictionCache`: ``DIR/predictions.json``, per page, condition and weights
  checksum, with a key of everything else that decides a prediction (runtime, imgsz,
  conf, threshold and :func:`reader_fingerprint`, the source of the page reader and
  detector): a second run prints the tables at once, a changed reader recomputes;
* :class:`Scorer`: one :class:`~ecg_dicom.pipeline.Pipeline` per weights at a time
  (uncalibrated: the raw score of each fold model is what is evaluated).
"""

from __future__ import annotations

import hashlib
import json
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecg_dicom.config import ModelSettings, Settings
from ecg_dicom.model import Detector
from ecg_dicom.pipeline import Pipeline
from ecg_dicom.records import CLASS_NAMES, Classification, Detection
from ecg_dicom.train.folds import Fold, read_folds

FOLDS_FILE = "folds.json"
PREDICTIONS_FILE = "predictions.json"


@dataclass(frozen=True)
class FoldSetup:
    """The folds of ``DIR/folds.json``, the source folder and each fold's weights."""

    folds_dir: Path
    source: Path
    folds: tuple[Fold, ...]
    weights: tuple[Path, ...]


def load_setup(folds_dir: Path, data: Path | None = None) -> FoldSetup:
    """Read ``folds.json`` and check that every page and every fold model is there;
    a missing one is named in the error (FileNotFoundError)."""
    folds_dir = Path(folds_dir)
    path = folds_dir / FOLDS_FILE
    if not folds_dir.is_dir():
        raise FileNotFoundError(f"folds folder {folds_dir} not found")
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: --folds needs a folder with folds.json")
    record = json.loads(path.read_text(encoding="utf-8"))
    folds = tuple(read_folds(path))
    if not folds:
        raise ValueError(f"{path} has no folds")
    source = Path(data) if data is not None else Path(str(record.get("source", "")))
    if not source.is_dir():
        raise FileNotFoundError(
            f"page folder {source} not found (from {'--data' if data else path}); "
            "give the folder of class folders with --data"
        )
    weights = []
    for fold in folds:
        w = Path(fold.weights)
        w = w if w.is_absolute() else folds_dir / w
        if not w.is_file():
            raise FileNotFoundError(f"weights of fold {fold.index} ({w}) not found")
        weights.append(w)
    missing = [rel for fold in folds for _, rel in fold.test if not (source / rel).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} test pages of {path} are not in {source}, e.g. {missing[0]}"
        )
    return FoldSetup(folds_dir, source, folds, tuple(weights))


def reader_fingerprint() -> str:
    """SHA-256 (16 hex) of the source of what turns a file into a score: the modules of
    the page reader the pipeline loads (``ecg_dicom.pages.*``, straightening included
    once the reader uses it), the detector, its preprocessing and the decision rule.
    A change recomputes cached predictions."""
    import ecg_dicom.pipeline  # noqa: F401  (imports the page reader it uses)

    names = sorted(
        name for name in list(sys.modules)
        if name.startswith("ecg_dicom.pages.") or name in {
            "ecg_dicom.model.detector", "ecg_dicom.model.preprocess", "ecg_dicom.model.decision"}
    )
    digest = hashlib.sha256()
    for name in names:
        source = getattr(sys.modules[name], "__file__", None)
        if source:
            digest.update(name.encode() + b"\0" + Path(source).read_bytes())
    return digest.hexdigest()[:16]


class PredictionCache:
    """Per-page predictions in ``DIR/predictions.json``: ``{"entries": {"<condition>|<page>":
    {"sha256", "key", "prediction"}}}``; an entry counts only for the same weights and key."""

    def __init__(self, path: Path, key: dict[str, Any]) -> None:
        self.path = Path(path)
        self.key = json.dumps(key, sort_keys=True)
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                self.entries = dict(data.get("entries", {}))
            except (OSError, ValueError):
                self.entries = {}

    def get(self, condition: str, page: str, sha256: str) -> dict[str, Any] | None:
        entry = self.entries.get(f"{condition}|{page}")
        if entry and entry.get("sha256") == sha256 and entry.get("key") == self.key:
            return dict(entry["prediction"])
        return None

    def put(self, condition: str, page: str, sha256: str, prediction: dict[str, Any]) -> None:
        self.entries[f"{condition}|{page}"] = {
            "sha256": sha256, "key": self.key, "prediction": prediction,
        }

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"entries": self.entries}, ensure_ascii=False),
                       encoding="utf-8")
        tmp.replace(self.path)


def classification_from_dict(d: dict[str, Any]) -> Classification:
    """A :class:`Classification` back from its ``to_dict`` (the cache)."""
    return Classification(
        label=d["label"], class_name=d.get("class_name"), confidence=float(d["confidence"]),
        abnormal_score=float(d["abnormal_score"]),
        detections=tuple(
            Detection(x["class_name"], float(x["confidence"]), tuple(x["box"]))  # type: ignore[arg-type]
            for x in d.get("detections", ())
        ),
        model_name=d.get("model_name", ""), model_version=d.get("model_version", ""),
        runtime=d.get("runtime", ""), reason=d.get("reason", ""),
    )


@dataclass
class Scorer:
    """Loads a pipeline per weights (once) and reads pages through it."""

    model: ModelSettings
    calibrate: bool = False
    _loaded: tuple[str, Pipeline] | None = None

    def pipeline(self, weights: Path, sha256: str) -> Pipeline:
        if self._loaded is not None and self._loaded[0] == sha256:
            return self._loaded[1]
        if self._loaded is not None:
            self._loaded[1].close()
        settings = self.model.model_copy(update={"weights": weights, "sha256": sha256})
        detector = Detector(settings, calibrate=self.calibrate)
        pipeline = Pipeline(Settings.model_construct(model=settings), detector=detector)
        self._loaded = (sha256, pipeline)
        return pipeline

    def close(self) -> None:
        if self._loaded is not None:
            self._loaded[1].close()
            self._loaded = None


def page_seed(page: str, condition: str, seed: int) -> int:
    return (zlib.crc32(f"{seed}|{condition}|{page}".encode()) & 0x7FFFFFFF)


def read_rgb(path: Path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"{path} cannot be read as an image")
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def write_png(rgb: np.ndarray, path: Path) -> Path:
    import cv2

    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return path


def subset(pages: Sequence[tuple[str, str]], per_class: int | None, seed: int) -> list[
    tuple[str, str]
]:
    """``per_class`` pages of each class, drawn with ``seed`` (all when None)."""
    if per_class is None:
        return list(pages)
    rng = np.random.default_rng(seed)
    chosen: list[tuple[str, str]] = []
    for name in CLASS_NAMES:
        members = sorted(p for p in pages if p[0] == name)
        order = rng.permutation(len(members))
        chosen += [members[i] for i in sorted(order[:per_class])]
    return chosen


def single_model_setup(data: Path, weights: Path, out: Path) -> FoldSetup:
    """One "fold" holding every page of the class folders ``data``, read by ``weights``
    (``evaluate --perturb --data --weights``: a robustness table of one model; its
    figures are honest only on pages that model never saw).  ``out`` holds the cache."""
    from ecg_dicom.train.folds import source_pages

    data, weights = Path(data), Path(weights)
    if not data.is_dir():
        raise FileNotFoundError(f"page folder {data} not found")
    if not weights.is_file():
        raise FileNotFoundError(f"weights {weights} not found")
    pages = source_pages(data)
    test = tuple(sorted(((name, rel) for name, rels in pages.items() for rel in rels),
                        key=lambda t: t[1]))
    out.mkdir(parents=True, exist_ok=True)
    return FoldSetup(out, data, (Fold(index=0, test=test, weights=str(weights)),), (weights,))
