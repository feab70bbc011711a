"""Timezone Offset From UTC (0008,0201) of the source, and the build's times in it.

The offset applies to every DA/TM of the instance (PS3.3 C.12.1.1.8), so the
date/times the build wrote from this machine's clock (Instance Creation, Content,
Date/Time of Secondary Capture: :data:`GENERATED_TIMES`) are converted into that
offset before it is copied (:func:`copy_timezone`).  An invalid offset is not
copied (logged).
"""

from __future__ import annotations

import datetime
import logging

from pydicom.dataset import Dataset

# The logger keeps its v0.1 name: log consumers filter on it (docs/architecture.md).
log = logging.getLogger("ecg_dicom.context")

#: Date/time pairs the build writes from this machine's clock (naive local time).
GENERATED_TIMES: tuple[tuple[str, str], ...] = (
    ("InstanceCreationDate", "InstanceCreationTime"),
    ("ContentDate", "ContentTime"),
    ("DateOfSecondaryCapture", "TimeOfSecondaryCapture"),
)


def _offset(value: str) -> datetime.timezone | None:
    """A Timezone Offset From UTC value ("+HHMM" / "-HHMM") as a timezone."""
    value = value.strip()
    if len(value) != 5 or value[0] not in "+-" or not value[1:].isdigit():
        return None
    hours, minutes = int(value[1:3]), int(value[3:])
    if hours > 14 or minutes >= 60:
        return None
    sign = 1 if value[0] == "+" else -1
    return datetime.timezone(sign * datetime.timedelta(hours=hours, minutes=minutes))


def copy_timezone(source: Dataset, target: Dataset) -> None:
    """Copy the source's Timezone Offset From UTC into ``target``, its generated
    times converted into that offset first.  Idempotent."""
    value = str(source.get("TimezoneOffsetFromUTC", "") or "")
    zone = _offset(value)
    if zone is None:
        if value:
            log.warning("Timezone Offset From UTC %r of the source is not valid: not copied", value)
        return
    if str(target.get("TimezoneOffsetFromUTC", "")) == value.strip():
        return  # already done: the times below are in that offset
    for date_kw, time_kw in GENERATED_TIMES:
        if not (target.get(date_kw) and target.get(time_kw)):
            continue
        local = datetime.datetime.combine(
            _as_date(str(target[date_kw].value)), _as_time(str(target[time_kw].value))
        )
        there = local.astimezone().astimezone(zone)  # naive = this machine's local time
        target[date_kw].value = there.strftime("%Y%m%d")
        target[time_kw].value = there.strftime("%H%M%S.%f")
    target.TimezoneOffsetFromUTC = value.strip()


def _as_date(value: str) -> datetime.date:
    return datetime.datetime.strptime(value[:8], "%Y%m%d").date()


def _as_time(value: str) -> datetime.time:
    digits, _, fraction = value.partition(".")
    digits = digits.ljust(6, "0")[:6]
    micro = int(fraction.ljust(6, "0")[:6]) if fraction else 0
    return datetime.time(int(digits[:2]), int(digits[2:4]), int(digits[4:6]), micro)
