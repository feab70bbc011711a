"""Fixtures shared by all tests: the real data (tests/realdata.py) and the model."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecg_dicom.startup import configure_libraries

# Tests import the data locations and copies from realdata, never from a conftest: a
# folder's own conftest.py (tests/fuzz) would shadow this one under the name "conftest".
from realdata import ROOT, real_ecg_paths


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
def library_settings() -> None:
    """The process-wide library settings the service runs with (tolerant DICOM
    reading): parts tested in-process run as they do in the service."""
    configure_libraries()


@pytest.fixture(scope="session")
def default_model() -> Path:
    """The model ``model.runtime: auto`` runs on this machine, derived once per checkout
    (``serve_proc.ensure_default_model``) for tests that run the service's own model.
    Services started by ``serve_proc`` ask for it themselves; other tests request it."""
    import serve_proc

    return serve_proc.ensure_default_model()


@pytest.fixture(scope="session")
def real_ecgs() -> list[Path]:
    return real_ecg_paths()
