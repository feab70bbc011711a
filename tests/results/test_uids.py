"""Result UIDs are valid, distinct, the same every time for the same content, and new
for any change of what the content depends on."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import numpy as np
import pytest
from pydicom import Dataset

from ecg_dicom.config import Settings
from ecg_dicom.records import Classification, Page
from ecg_dicom.results.uids import (
    ResultUIDs,
    content_key,
    device_observer_uid,
    result_uids,
    series_numbers,
    sr_uid_for_class,
    tracking_uid,
)

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
        "from ecg_dicom.results.uids import result_uids;"
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


# --- UIDs follow content ------------------------------------------------------------------

def _content() -> tuple[Dataset, Page, Classification, Settings]:
    source = Dataset()
    source.SOPInstanceUID = SOURCE
    source.PatientName = "Doe^Jane"
    source.PatientID = "123"
    page = Page(image=np.full((40, 60, 3), 255, np.uint8), source_kind="image")
    result = Classification(
        label="Normal", class_name="Normal-ECG", confidence=0.9, abnormal_score=0.1,
        detections=(), model_name="ecg-dicom YOLOv8m", model_version=VERSION,
        runtime="openvino-int8 int8",
    )
    return source, page, result, Settings()


def test_content_key_is_stable_for_the_same_content() -> None:
    assert content_key(*_content()) == content_key(*_content())


def _with(settings: Settings, section: str, **values: object) -> Settings:
    part = getattr(settings, section).model_copy(update=values)
    return settings.model_copy(update={section: part})


@pytest.mark.parametrize(
    "change",
    ["conf", "threshold", "imgsz", "runtime", "weights", "pixels", "patient", "institution"],
)
def test_any_change_of_what_the_content_depends_on_gives_a_new_key(change: str) -> None:
    source, page, result, settings = _content()
    base = content_key(source, page, result, settings)
    if change == "conf":
        settings = _with(settings, "model", conf=0.25)
    elif change == "threshold":
        settings = _with(settings, "model", abnormal_threshold=0.6)
    elif change == "imgsz":
        settings = _with(settings, "model", imgsz=640)
    elif change == "institution":
        settings = _with(settings, "output", institution_name="Hospital")
    elif change == "runtime":
        result = dataclasses.replace(result, runtime="pytorch f32")
    elif change == "weights":
        result = dataclasses.replace(result, model_version="0" * 64)
    elif change == "pixels":
        image = page.image.copy()
        image[5, 5] = 0
        page = dataclasses.replace(page, image=image)
    elif change == "patient":
        source.PatientName = "Doe^John"
    other = content_key(source, page, result, settings)
    assert other != base
    before = set(_all(result_uids(SOURCE, base, ROOT)))
    assert not set(_all(result_uids(SOURCE, other, ROOT))) & before


def test_sr_in_another_class_gets_its_own_stable_uid() -> None:
    sr = result_uids(SOURCE, VERSION, ROOT).sr_sop
    comprehensive = sr_uid_for_class(sr, "1.2.840.10008.5.1.4.1.1.88.33", ROOT)
    enhanced = sr_uid_for_class(sr, "1.2.840.10008.5.1.4.1.1.88.22", ROOT)
    assert len({sr, comprehensive, enhanced}) == 3
    assert comprehensive == sr_uid_for_class(sr, "1.2.840.10008.5.1.4.1.1.88.33", ROOT)
    assert UID_RE.fullmatch(comprehensive) and len(comprehensive) <= 64


@pytest.mark.parametrize(
    ("bases", "slot", "expected"),
    [((9901, 9902), 0, (9901, 9902)), ((9901, 9902), 1, (9903, 9904)),
     ((9901, 9902), 2, (9905, 9906)), ((100, 200), 3, (103, 203))],
)
def test_series_numbers_per_ecg_of_a_study(
    bases: tuple[int, int], slot: int, expected: tuple[int, int]
) -> None:
    assert series_numbers(*bases, slot) == expected


def test_series_numbers_never_collide_across_ecgs_of_a_study() -> None:
    numbers = [n for slot in range(50) for n in series_numbers(9901, 9902, slot)]
    assert len(numbers) == len(set(numbers))
