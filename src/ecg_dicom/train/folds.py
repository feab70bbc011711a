"""Stratified k-fold cross-validation folds of a folder of class folders.

The model card's figures come from k-fold cross-validation on every page we have
(issue 14): each page is a test page of exactly one fold, whose model never saw it,
so every page gets one *out-of-fold* prediction.  The folds are fixed by the seed
and the sorted file names alone, so the GPU run that trains the fold models and
``ecg-dicom evaluate --folds`` on any machine agree on which page belongs where.

``folds.json`` (written by :func:`write_folds`, read by :func:`read_folds`)::

    {"k": 5, "seed": 0, "source": "...",
     "folds": [{"fold": 0, "test": [["ECG HB", "heart_block/x.jpg"], ...],
                "weights": "fold0.pt"}, ...]}

Paths are relative to the source folder (the layout of ``shared/data/ecg-images``).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from ecg_dicom.records import CLASS_NAMES
from ecg_dicom.train.dataset import FOLDER_CLASSES, images_in

#: Folds used for the model card (5: each model trains on 80 % of the pages).
DEFAULT_K = 5


@dataclass(frozen=True)
class Fold:
    """One fold: its test pages (class name, path relative to the source folder)."""

    index: int
    test: tuple[tuple[str, str], ...]
    weights: str = ""
    extra: dict[str, object] = field(default_factory=dict, compare=False)


def source_pages(source: Path) -> dict[str, list[str]]:
    """Class name -> sorted relative paths of the pages in ``source``'s class folders."""
    pages: dict[str, list[str]] = {}
    for folder, name in FOLDER_CLASSES.items():
        if (source / folder).is_dir():
            pages.setdefault(name, []).extend(
                f"{folder}/{p.name}" for p in images_in(source / folder)
            )
    if not pages:
        raise ValueError(f"{source} has none of the class folders {sorted(FOLDER_CLASSES)}")
    return {k: sorted(v) for k, v in pages.items()}


def make_folds(source: Path, k: int = DEFAULT_K, seed: int = 0) -> list[Fold]:
    """Stratified folds: each class's pages, shuffled with ``seed``, dealt round-robin
    into ``k`` folds, so every fold holds about 1/k of every class."""
    if k < 2:
        raise ValueError(f"k-fold cross-validation needs k >= 2, got {k}")
    rng = random.Random(seed)
    members: list[list[tuple[str, str]]] = [[] for _ in range(k)]
    offset = 0
    pages = source_pages(source)
    for name in CLASS_NAMES:
        files = list(pages.get(name, ()))
        rng.shuffle(files)
        for i, rel in enumerate(files):
            # the offset carries on between classes, so small classes do not all
            # start in fold 0
            members[(offset + i) % k].append((name, rel))
        offset += len(files)
    return [
        Fold(index=i, test=tuple(sorted(m, key=lambda t: t[1])), weights=f"fold{i}.pt")
        for i, m in enumerate(members)
    ]


def write_folds(folds: list[Fold], path: Path, *, source: Path, seed: int) -> Path:
    """Write ``folds.json`` (see the module docstring)."""
    data = {
        "k": len(folds),
        "seed": seed,
        "source": str(source),
        "folds": [
            {"fold": f.index, "test": [list(t) for t in f.test], "weights": f.weights, **f.extra}
            for f in folds
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def read_folds(path: Path) -> list[Fold]:
    """The folds of a ``folds.json``."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return [
        Fold(
            index=int(f["fold"]),
            test=tuple((str(c), str(p)) for c, p in f["test"]),
            weights=str(f.get("weights", "")),
            extra={k: v for k, v in f.items() if k not in {"fold", "test", "weights"}},
        )
        for f in data["folds"]
    ]
