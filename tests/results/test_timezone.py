"""timezone.py: the source's Timezone Offset From UTC copied, the build's own times
converted into it first; an invalid offset not copied."""

from __future__ import annotations

import datetime

import pytest
from pydicom import Dataset

from ecg_dicom.results.timezone import copy_timezone


def _built(date: str, time: str) -> Dataset:
    ds = Dataset()
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    return ds


def test_build_times_are_converted_into_the_source_offset() -> None:
    local = datetime.datetime(2024, 1, 2, 10, 0, 0)
    target = _built(local.strftime("%Y%m%d"), local.strftime("%H%M%S"))
    source = Dataset()
    source.TimezoneOffsetFromUTC = "+0900"
    copy_timezone(source, target)
    there = local.astimezone().astimezone(datetime.timezone(datetime.timedelta(hours=9)))
    assert target.TimezoneOffsetFromUTC == "+0900"
    assert target.InstanceCreationDate == there.strftime("%Y%m%d")
    assert target.InstanceCreationTime == there.strftime("%H%M%S.%f")
    copy_timezone(source, target)  # idempotent: not converted twice
    assert target.InstanceCreationTime == there.strftime("%H%M%S.%f")


@pytest.mark.parametrize("offset", ["0900", "+2500", "+0960", "UTC"])
def test_invalid_offset_is_not_copied(offset: str, caplog: pytest.LogCaptureFixture) -> None:
    target = _built("20240102", "100000")
    source = Dataset()
    source.TimezoneOffsetFromUTC = offset
    with caplog.at_level("WARNING", logger="ecg_dicom.context"):
        copy_timezone(source, target)
    assert "TimezoneOffsetFromUTC" not in target
    assert target.InstanceCreationTime == "100000"
    assert "not valid" in caplog.text
