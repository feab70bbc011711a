"""Where the real data lives, and copies of it: for the tests and the benchmarks.

The real ECGs are read from ``../shared/data`` beside the project (see
tests/README.md for provenance); nothing from there is copied into the repo.
The benchmarks import this module too (``PYTHONPATH=tests``, as ``make bench`` runs
them), so it needs nothing from pytest.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom import examples
from pydicom.uid import generate_uid

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
DICOM_ECG_DIR = SHARED_DATA / "dicom-ecg"
ECG_IMAGES_DIR = SHARED_DATA / "ecg-images"


def real_ecg_paths() -> list[Path]:
    """Every real DICOM ECG we test with: three carts plus pydicom's example."""
    paths = sorted(DICOM_ECG_DIR.glob("*/ecg.dcm"))
    if len(paths) != 3:
        raise FileNotFoundError(f"expected 3 real ECGs under {DICOM_ECG_DIR}, found {paths}")
    return [*paths, Path(examples.get_path("waveform"))]


def copies_with_new_uids(sources: list[Path], folder: Path, count: int) -> list[Path]:
    """``count`` distinct instances made from real ECGs (cycled), each with a new SOP
    Instance UID: for tests and benchmarks that need many different objects."""
    folder.mkdir(parents=True, exist_ok=True)
    datasets = [pydicom.dcmread(p) for p in sources]
    paths = []
    for i in range(count):
        ds = datasets[i % len(datasets)]
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        path = folder / f"ecg{i:05d}.dcm"
        ds.save_as(path)
        paths.append(path)
    return paths
