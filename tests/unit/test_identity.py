"""Result UIDs are valid, distinct, and the same every time for the same ECG and model."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from ecg_dicom.identity import ResultUIDs, device_observer_uid, result_uids, tracking_uid

ROOT = "1.2.826.0.1.3680043.8.498."
SOURCE = "1.3.6.1.4.1.40744.65.151382287121881585835965669107954106925"
VERSION = "3f2a" * 16  # a SHA-256-like model version
UID_RE = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")


def _all(uids: ResultUIDs) -> list[str]:
    return [uids.sc_series, uids.sc_sop, uids.sr_series, uids.sr_sop]


def test_uids_are_valid_and_under_the_root() -> None:
    for uid in _all(result_uids(SOURCE, VERSION, ROOT)):
        assert len(uid) <= 64, uid
        assert UID_RE.fullmatch(uid), uid
        assert uid.startswith(ROOT), uid


def test_root_without_trailing_dot_is_accepted() -> None:
    assert result_uids(SOURCE, VERSION, ROOT.rstrip(".")) == result_uids(SOURCE, VERSION, ROOT)


def test_same_inputs_same_uids() -> None:
    assert result_uids(SOURCE, VERSION, ROOT) == result_uids(SOURCE, VERSION, ROOT)


def test_same_uids_in_another_process() -> None:
    """The derivation does not depend on process state (hash seeds, time, pid)."""
    code = (
        "from ecg_dicom.identity import result_uids;"
        f"u = result_uids({SOURCE!r}, {VERSION!r}, {ROOT!r});"
        "print(u.sc_series, u.sc_sop, u.sr_series, u.sr_sop)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    ).stdout.split()
    assert out == _all(result_uids(SOURCE, VERSION, ROOT))


def test_four_distinct_uids() -> None:
    assert len(set(_all(result_uids(SOURCE, VERSION, ROOT)))) == 4


@pytest.mark.parametrize(
    ("source", "version"),
    [(SOURCE + "1", VERSION), (SOURCE, VERSION[:-1] + "0"), ("1.2.3", VERSION)],
)
def test_other_source_or_model_gives_other_uids(source: str, version: str) -> None:
    base = set(_all(result_uids(SOURCE, VERSION, ROOT)))
    other = set(_all(result_uids(source, version, ROOT)))
    assert not base & other


def test_other_root_gives_other_uids() -> None:
    other = result_uids(SOURCE, VERSION, "1.2.3.")
    assert all(u.startswith("1.2.3.") for u in _all(other))
    assert not set(_all(other)) & set(_all(result_uids(SOURCE, VERSION, ROOT)))


def test_padding_of_the_source_uid_does_not_matter() -> None:
    assert result_uids(SOURCE + "\x00", VERSION, ROOT) == result_uids(SOURCE, VERSION, ROOT)


def test_ill_formed_source_uid_still_maps_stably() -> None:
    bad = "1.2.826.0.1.34471.2.44.6.20021122091000..1"  # as sent by a real cart
    assert result_uids(bad, VERSION, ROOT) == result_uids(bad, VERSION, ROOT)
    assert UID_RE.fullmatch(result_uids(bad, VERSION, ROOT).sr_sop)


@pytest.mark.parametrize(("source", "version"), [("", VERSION), ("  ", VERSION), (SOURCE, "")])
def test_empty_inputs_are_refused(source: str, version: str) -> None:
    with pytest.raises(ValueError):
        result_uids(source, version, ROOT)


def test_tracking_uids_stable_and_distinct_per_group() -> None:
    sr = result_uids(SOURCE, VERSION, ROOT).sr_sop
    first = [tracking_uid(sr, i, ROOT) for i in range(5)]
    assert first == [tracking_uid(sr, i, ROOT) for i in range(5)]
    assert len(set(first)) == 5
    assert all(UID_RE.fullmatch(u) and len(u) <= 64 for u in first)


def test_device_observer_uid_per_model_release() -> None:
    a = device_observer_uid("ecg-dicom YOLOv8m", VERSION, ROOT)
    assert a == device_observer_uid("ecg-dicom YOLOv8m", VERSION, ROOT)
    assert a != device_observer_uid("ecg-dicom YOLOv8m", "0" * 64, ROOT)
    assert a != device_observer_uid("other", VERSION, ROOT)
