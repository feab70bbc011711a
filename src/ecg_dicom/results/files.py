"""Write the SC and SR of one result into an output folder, durably and safely.

Used for the audit copy (``delivery.keep_outputs``), for results that have no
destination, and by the worker to keep results between build and delivery.

* **Names from sanitised UIDs only.**  A file is named ``SC-<uid>.dcm`` or
  ``SR-<uid>.dcm`` where ``<uid>`` is the object's SOP Instance UID if it is
  well formed (PS3.5 9.1: digits and dots, at most 64 characters), else its
  digits and dots plus a hash of the original (:func:`safe_uid`).  Nothing a sender controls
  can therefore add a separator, "..", or an absolute path: every file is a direct
  child of ``root`` (checked again after resolving).  The folder is flat because
  the worker reads results back with ``root.glob("*.dcm")``.
* **Atomic.**  Each file is written to a temporary name in the same folder,
  flushed and fsync'ed, then renamed over the final name, and the folder is
  fsync'ed: a reader sees the old file or the new one, never half of one, and a
  crash never leaves a partial ``.dcm``.  Re-writing the same result (same UIDs,
  see identity.py) replaces the file rather than adding one.
* Files are DICOM Part 10 (PS3.10 7.1: preamble, "DICM", File Meta Information).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from io import BytesIO
from pathlib import Path

from pydicom import Dataset

from ecg_dicom.records import Outputs

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


def encode(dataset: Dataset) -> bytes:
    """The dataset as DICOM Part 10 bytes (File Meta Information included)."""
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories; the rename still happened
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``: temporary file in the same folder, fsync, rename."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


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
        write_atomic(path, encode(dataset))
        written.append(path)
    return written
