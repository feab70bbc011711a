"""Fuzz findings kept as regression tests: each mutant here once got a wrong answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecg_dicom.errors import InputError
from ecg_dicom.pages import page_from_dataset
from ecg_dicom.pipeline import load_dataset
from fuzz.mutants import mutant


def test_a_truncated_deferred_value_is_bad_input_when_read_in_the_thread(tmp_path: Path) -> None:
    """``bitflip/ge-mac55/16.1268``: a flipped length leaves a large waveform value short.
    The load stage defers it; read later in the thread (``limits.isolate: false``) pydicom
    raised a bare OSError, which the worker took for a bug and retried.  It is an input
    error."""
    made = mutant(16, 1268, only="bitflip")
    assert made.name == "bitflip/ge-mac55/16.1268"
    path = tmp_path / "mutant.dcm"
    path.write_bytes(made.data)
    ds = load_dataset(path)
    with pytest.raises(InputError, match="truncated or corrupt"):
        page_from_dataset(ds)
