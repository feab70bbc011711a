"""The service the fuzz tests attack: a real ``ecg-dicom serve`` (model loaded, one
worker) with short connection timeouts, so that a stalled peer is ended in seconds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fuzz.campaign import FUZZ_CONFIG
from serve_proc import ServeProcess


@pytest.fixture
def fuzz_service(tmp_path: Path) -> Iterator[ServeProcess]:
    service = ServeProcess(tmp_path / "serve", FUZZ_CONFIG)
    service.workdir.mkdir()
    service.start()
    yield service
    service.stop()
