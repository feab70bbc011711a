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


@pytest.fixture(scope="session", autouse=True)
def default_runtime_export() -> None:
    """Derive the model the default runtime uses on this machine once, before any test.

    ``model.runtime: auto`` resolves per machine (on a CPU: the int8 OpenVINO model;
    see ``detect.resolve_runtime``).  Every service and CLI
    the tests start then finds that export in the shared cache
    (``serve_proc.MODEL_CACHE``) instead of deriving it while a test waits for
    readiness.  Cached per checkout, keyed by checksum.
    """
    import serve_proc
    from ecg_dicom.config import ModelSettings
    from ecg_dicom.model.detector import input_shape, resolve_runtime, weights_checksum
    from ecg_dicom.train.export import cached_export

    runtime = resolve_runtime(ModelSettings()).runtime
    if runtime == "pytorch":
        return
    weights = serve_proc.WEIGHTS
    cached_export(
        weights,
        weights_checksum(weights),
        runtime,
        input_shape(ModelSettings().imgsz),
        serve_proc.MODEL_CACHE,
    )


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
