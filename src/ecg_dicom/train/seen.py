"""Which pages trained a model, and whether an evaluation looks at them again.

A model scored on the pages it learnt from looks far better than it is (the shipped
weights score ~99.7 % on their own training pages).  So every set of weights has,
beside it, ``training-pages.json``: the file name and the SHA-256 of every page of
its training split.  ``ecg-dicom train`` writes it into the run folder (beside
``weights/``); the shipped weights have ``weights/training-pages.json``.
``ecg-dicom evaluate`` compares the pages it is given with it, by name (the pages'
names carry a hash of their content; a page rescaled by ``dataset build --width``
keeps its name) or by content, warns, and also scores the pages the model has not
seen on their own.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

RECORD_NAME = "training-pages.json"


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes (a symlink's target)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def training_record(pages: Iterable[Path], **about: Any) -> dict[str, Any]:
    """The record of a training split: ``about`` (e.g. the dataset, the weights'
    checksums) and, per page, its name and SHA-256."""
    return {
        **about,
        "pages": [{"name": p.name, "sha256": file_sha256(p)} for p in sorted(pages)],
    }


def train_split_pages(data_yaml: Path) -> list[Path]:
    """The page files of the training split named by an ultralytics ``data.yaml``
    (a folder of images, or a text file listing them)."""
    data = yaml.safe_load(Path(data_yaml).read_text(encoding="utf-8")) or {}
    root = Path(data.get("path") or Path(data_yaml).parent)
    entries = data.get("train") or []
    pages: list[Path] = []
    for entry in [entries] if isinstance(entries, str) else entries:
        where = Path(entry) if Path(entry).is_absolute() else root / entry
        if where.is_dir():
            pages += [p for p in where.iterdir() if p.is_file()]
        elif where.is_file():
            lines = where.read_text(encoding="utf-8").splitlines()
            pages += [Path(line.strip()) for line in lines if line.strip()]
    return sorted(set(pages))


def write_training_record(folder: Path, data_yaml: Path, **about: Any) -> Path:
    """Write ``folder/training-pages.json`` for the training split of ``data_yaml``."""
    path = Path(folder) / RECORD_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    record = training_record(train_split_pages(data_yaml), data=str(data_yaml), **about)
    path.write_text(json.dumps(record, indent=1), encoding="utf-8")
    return path


def find_record(weights: Path) -> Path | None:
    """The training record of ``weights``: beside them, or in the run folder above
    ``weights/`` (``runs/train/NAME/weights/best.pt``)."""
    for folder in (Path(weights).parent, Path(weights).parent.parent):
        if (folder / RECORD_NAME).is_file():
            return folder / RECORD_NAME
    return None


def seen_in_training(
    weights: Path, checksum: str, pages: Sequence[Path]
) -> tuple[Path | None, set[Path]]:
    """(the record used, the ``pages`` that trained ``weights``).  A record that names
    other weights (``weights_sha256``) does not apply; with no record, nothing is known."""
    record_path = find_record(weights)
    if record_path is None:
        return None, set()
    record = json.loads(record_path.read_text(encoding="utf-8"))
    owners = record.get("weights_sha256")
    if owners and checksum not in owners:
        return None, set()
    names = {p["name"] for p in record.get("pages", [])}
    hashes = {p["sha256"] for p in record.get("pages", [])}
    seen = {p for p in pages if p.name in names}
    seen |= {p for p in pages if p not in seen and file_sha256(p) in hashes}
    return record_path, seen
