"""Write the SC and SR of one result into an output folder, durably and safely.

Used for the audit copy (``delivery.keep_outputs``), for results that have no
destination, and by the worker to keep results between build and delivery.

* **Names from sanitised UIDs only.**  A file is named ``SC-<uid>.dcm`` or
  ``SR-<uid>.dcm`` where ``<uid>`` is the object's SOP Instance UID if it is
  well formed (PS3.5 9.1: digits and dots, at most 64 characters), else its
  digits and dots plus a hash of the original (:func:`safe_uid`).  Nothing a sender controls
  can therefore add a separator, "..", or an absolute path: every file is a direct
  child of ``root`` (checked again after resolving).  The folder is flat because
  the worker reads results back with :func:`read_kept`.
* **Atomic** (:func:`ecg_dicom.durable.write_atomic`).  Each file is written to a
  temporary name in the same folder, flushed and fsync'ed, then renamed over the
  final name, and the folder is fsync'ed: a reader sees the old file or the new
  one, never half of one, and a crash never leaves a partial ``.dcm``.  Re-writing
  the same result (same UIDs, see uids.py) replaces the file rather than adding one.
* Files are DICOM Part 10 (PS3.10 7.1: preamble, "DICM", File Meta Information).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from io import BytesIO
from pathlib import Path

from pydicom import Dataset, dcmread

from ecg_dicom.durable import write_atomic
from ecg_dicom.records import Outputs
from ecg_dicom.sop import SR_MODALITY

_VALID_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_NOT_UID = re.compile(r"[^0-9.]")
_MAX_UID = 64


def safe_uid(uid: object) -> str:
    """A file-name-safe form of a UID.

    A well-formed UID (digits and single dots, at most 64 characters) is kept as
    it is.  Anything else is reduced to its digits and single dots (at most 40
    characters) followed by "_" and 16 hex digits of the SHA-256 of the original,
    so two different ill-formed UIDs never share a file name.
    """
    text = str(uid)
    if len(text) <= _MAX_UID and _VALID_UID.fullmatch(text):
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    cleaned = re.sub(r"\.{2,}", ".", _NOT_UID.sub("", text)).strip(".")[:40].strip(".")
    return f"{cleaned}_{digest}" if cleaned else digest


def output_path(root: Path, kind: str, dataset: Dataset) -> Path:
    """Where ``dataset`` (kind "SC" or "SR") is written under ``root``."""
    if kind not in ("SC", "SR"):
        raise ValueError(f"unknown output kind {kind!r}")
    name = f"{kind}-{safe_uid(dataset.get('SOPInstanceUID', ''))}.dcm"
    path = root / name
    if path.parent != root or path.name != name:
        raise ValueError(f"refusing to write {name!r} outside {root}")
    return path


def encode_part10(dataset: Dataset) -> bytes:
    """The dataset as DICOM Part 10 bytes (PS3.10 7.1: preamble, "DICM", File Meta
    Information): what is written to a file and what a STOW-RS part carries."""
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def sending_order(datasets: Iterable[Dataset]) -> list[Dataset]:
    """SC (and any image) before SR, otherwise in the order given: the SR references
    the SC (IHE AIR sends them so too).  The one place that order is written."""
    return sorted(datasets, key=lambda ds: 1 if ds.get("Modality") == SR_MODALITY else 0)


def read_kept(folder: Path) -> list[Dataset]:
    """The results kept in ``folder`` by :func:`write_outputs`, in :func:`sending_order`."""
    return sending_order(dcmread(path) for path in sorted(Path(folder).glob("*.dcm")))


def write_outputs(outputs: Outputs, root: Path) -> list[Path]:
    """Write the SC then the SR of ``outputs`` into ``root`` (created if needed).

    Returns the two paths, SC first.  Every path is a direct child of ``root``.
    """
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for kind, dataset in (("SC", outputs.sc), ("SR", outputs.sr)):
        if not isinstance(dataset, Dataset):
            raise TypeError(f"outputs.{kind.lower()} is not a pydicom Dataset")
        path = output_path(root, kind, dataset)  # a direct child of root, never resolved:
        # a link planted at that name is replaced by the rename, not followed
        write_atomic(path, encode_part10(dataset))
        written.append(path)
    return written
