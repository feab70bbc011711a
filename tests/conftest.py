"""Fixtures shared by all tests: where the real data lives.

The real ECGs are read from ``../shared/data`` beside the project (see
tests/README.md for provenance); nothing from there is copied into the repo.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom import examples
from pydicom.uid import generate_uid

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
DICOM_ECG_DIR = SHARED_DATA / "dicom-ecg"
ECG_IMAGES_DIR = SHARED_DATA / "ecg-images"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--weights",
        default=str(ROOT / "weights" / "ecg-yolov8m.pt"),
        help="model weights the service tests run with (default: the shipped weights)",
    )


def pytest_configure(config: pytest.Config) -> None:
    import serve_proc

    serve_proc.WEIGHTS = Path(config.getoption("--weights"))


@pytest.fixture(scope="session")
def default_model() -> Path:
    """The model ``model.runtime: auto`` runs on this machine, derived once per checkout
    (``serve_proc.ensure_default_model``) for tests that run the service's own model.
    Services started by ``serve_proc`` ask for it themselves; other tests request it."""
    import serve_proc

    return serve_proc.ensure_default_model()


def real_ecg_paths() -> list[Path]:
    """Every real DICOM ECG we test with: three carts plus pydicom's example."""
    paths = sorted(DICOM_ECG_DIR.glob("*/ecg.dcm"))
    if len(paths) != 3:
        raise FileNotFoundError(f"expected 3 real ECGs under {DICOM_ECG_DIR}, found {paths}")
    return [*paths, Path(examples.get_path("waveform"))]


@pytest.fixture(scope="session")
def real_ecgs() -> list[Path]:
    return real_ecg_paths()


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
