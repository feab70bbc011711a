"""Carry the ECG's identity and order context into the results (SR and SC).

highdicom builds the SC (``SCImage.from_ref_dataset``) and the SR (its
constructor copies from the first evidence item, our SC) with only the
attributes its constructors name: Patient's Name, ID, Birth Date and Sex; Study
Instance UID, Date, Time, ID, Accession Number and Referring Physician's Name;
Specific Character Set.  A PACS, a RIS and a worklist match results to the
patient and the order on more than that, so :func:`copy_context` completes a
built object from the source ECG:

* **Patient** module (PS3.3 C.7.1.1): Issuer of Patient ID (0010,0021), Issuer
  of Patient ID Qualifiers Sequence (0010,0024), Other Patient IDs Sequence
  (0010,1002) -- the patient ID means nothing without the domain that issued it.
* **Patient Study** module (C.7.2.2): Patient's Age, Size, Weight.
* **General Study** module (C.7.2.1): Study Description, Issuer of Accession
  Number Sequence (0008,0051), Referring Physician Identification Sequence,
  and the type 2 attributes highdicom already copies (Accession Number, Study
  ID/Date/Time, Referring Physician's Name), re-copied so both outputs say
  exactly what the source says.
* **SOP Common** module (C.12.1): Timezone Offset From UTC (0008,0201).  It
  applies to every DA/TM of the instance (C.12.1.1.8), so the date/times the
  build wrote from this machine's clock (Instance Creation, Content, Date/Time
  of Secondary Capture) are converted into that offset first.
* **Request context**: for an SC, the source's Request Attributes Sequence
  (0040,0275) in the General Series module (C.7.3.1, type 3), as it is; for an
  SR, the Referenced Request Sequence (0040,A370) of the SR Document General
  module (C.17.2.1, type 1C, "required if the document was requested"), one
  item per request the ECG was acquired for: from each Request Attributes item,
  or, without any, from the source's Accession Number.  Without an accession
  number or request attributes nothing says the ECG was ordered, and the
  sequence is left out.
* **Specific Character Set** (0008,0005, C.12.1.1.2): the target declares the
  source's character set, and ``ISO_IR 192`` (UTF-8) when a value it holds (for
  example the configured institution name) is outside that repertoire, so
  pydicom encodes every string as it reads.

Strict writing: a value copied from the sender that is not valid for its VR
(e.g. Patient's Age "45" rather than "045Y", PS3.5 6.2) is left out and logged,
never copied into our object.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterator
from copy import deepcopy

from highdicom.enum import SpecificCharacterSetValues
from pydicom import config
from pydicom.charset import convert_encodings
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from pydicom.valuerep import PersonName, validate_value

# The logger keeps its v0.1 name: log consumers filter on it (docs/architecture.md).
log = logging.getLogger("ecg_dicom.context")

#: Attributes copied as they are when the source has a value (module, keyword).
COPIED: tuple[tuple[str, str], ...] = (
    ("Patient C.7.1.1", "IssuerOfPatientID"),
    ("Patient C.7.1.1", "IssuerOfPatientIDQualifiersSequence"),
    ("Patient C.7.1.1", "OtherPatientIDsSequence"),
    ("Patient Study C.7.2.2", "PatientAge"),
    ("Patient Study C.7.2.2", "PatientSize"),
    ("Patient Study C.7.2.2", "PatientWeight"),
    ("General Study C.7.2.1", "StudyDescription"),
    ("General Study C.7.2.1", "AccessionNumber"),
    ("General Study C.7.2.1", "IssuerOfAccessionNumberSequence"),
    ("General Study C.7.2.1", "ReferringPhysicianName"),
    ("General Study C.7.2.1", "ReferringPhysicianIdentificationSequence"),
    ("General Study C.7.2.1", "StudyID"),
    ("General Study C.7.2.1", "StudyDate"),
    ("General Study C.7.2.1", "StudyTime"),
)
#: Date/time pairs the build writes from this machine's clock (naive local time).
GENERATED_TIMES: tuple[tuple[str, str], ...] = (
    ("InstanceCreationDate", "InstanceCreationTime"),
    ("ContentDate", "ContentTime"),
    ("DateOfSecondaryCapture", "TimeOfSecondaryCapture"),
)
#: Keywords of a Referenced Request Sequence item (PS3.3 Table C.17-2) taken from a
#: Request Attributes item (PS3.3 Table 10-9) of the same name.
_REQUEST_KEYWORDS = (
    "AccessionNumber",
    "IssuerOfAccessionNumberSequence",
    "RequestedProcedureID",
    "RequestedProcedureDescription",
    "RequestedProcedureCodeSequence",
    "ReasonForTheRequestedProcedure",
    "ReasonForRequestedProcedureCodeSequence",
)
#: Type 2 attributes of a Referenced Request Sequence item, present even when empty.
_REQUEST_TYPE2 = (
    "ReferencedStudySequence",
    "AccessionNumber",
    "PlacerOrderNumberImagingServiceRequest",
    "FillerOrderNumberImagingServiceRequest",
    "RequestedProcedureID",
    "RequestedProcedureDescription",
    "RequestedProcedureCodeSequence",
)
UTF8 = "ISO_IR 192"
#: The Specific Character Set values highdicom writes (its SpecificCharacterSetValues).
_HIGHDICOM_CHARSETS = frozenset(v.value for v in SpecificCharacterSetValues)
_TEXT_VRS = {"SH", "LO", "ST", "LT", "UT", "UC", "PN"}


def copy_context(source: Dataset, target: Dataset) -> None:
    """Complete ``target`` (an SC or SR built from ``source``) with the source's
    identity and order context; see the module docstring for what and why.

    Idempotent: calling it twice leaves the same object.
    """
    for module, keyword in COPIED:
        if keyword not in source or _is_empty(source[keyword]):
            continue
        element = _valid_element(source, keyword)
        if element is not None:
            target[element.tag] = element
        else:
            log.warning(
                "%s (%s module) of the source is not valid DICOM: not copied", keyword, module
            )
    _copy_timezone(source, target)
    if target.get("Modality") == "SR":
        requests = referenced_requests(source)
        if requests:
            target.ReferencedRequestSequence = DicomSequence(requests)
    else:
        requests_element = _valid_element(source, "RequestAttributesSequence")
        if requests_element is not None and not _is_empty(requests_element):
            target[requests_element.tag] = requests_element
    declare_character_set(source, target)


def referenced_requests(source: Dataset) -> list[Dataset]:
    """Referenced Request Sequence items (PS3.3 C.17.2.1) for the requests ``source``
    was acquired for: one per Request Attributes item, else one from the Accession
    Number; none when the source shows no request."""
    study_uid = source.StudyInstanceUID
    found: list[Dataset] = []
    for request in _valid_items(source, "RequestAttributesSequence"):
        item = _request_item(study_uid)
        for keyword in _REQUEST_KEYWORDS:
            element = _valid_element(request, keyword)
            if element is not None and not _is_empty(element):
                item[element.tag] = element
        same_order = item.AccessionNumber == source.get("AccessionNumber", "")
        if not item.AccessionNumber:
            _copy_if_valid(source, item, "AccessionNumber")
        if (same_order or not item.AccessionNumber) and "IssuerOfAccessionNumberSequence" not in item:
            _copy_if_valid(source, item, "IssuerOfAccessionNumberSequence")
        if any(item.get(k) for k in ("AccessionNumber", "RequestedProcedureID")):
            found.append(item)
    if not found and str(source.get("AccessionNumber", "") or "").strip():
        item = _request_item(study_uid)
        _copy_if_valid(source, item, "AccessionNumber")
        _copy_if_valid(source, item, "IssuerOfAccessionNumberSequence")
        found.append(item)
    return found


def character_set_for(source: Dataset) -> str | list[str] | None:
    """The Specific Character Set a result of ``source`` declares (PS3.3 C.12.1.1.2).

    The source's own, with an empty first value of a multi-valued one written as
    "ISO 2022 IR 6" (what the standard says it means; highdicom refuses the empty
    value); None for the default repertoire.  A value highdicom cannot write
    (e.g. "ISO 2022 IR 149", Korean) or that is not a defined term at all gives
    "ISO_IR 192": every string was decoded when read, and UTF-8 holds them all.
    """
    raw = source.get("SpecificCharacterSet")
    values = [str(v).strip() for v in (raw if isinstance(raw, MultiValue) else [raw or ""])]
    if len(values) > 1 and not values[0]:
        values[0] = "ISO 2022 IR 6"
    if values in ([""], ["ISO_IR 6"]):
        return None
    if all(v in _HIGHDICOM_CHARSETS for v in values):
        return values[0] if len(values) == 1 else values
    log.warning("Specific Character Set %r of the source is declared as %s", raw, UTF8)
    return UTF8


def declare_character_set(source: Dataset, target: Dataset) -> None:
    """Specific Character Set of ``target``: :func:`character_set_for` the source,
    or ISO_IR 192 (UTF-8) when a string ``target`` holds is outside that repertoire
    (PS3.3 C.12.1.1.2; PS3.5 6.1)."""
    declared = character_set_for(source)
    if declared is not None:
        target.SpecificCharacterSet = declared
    elif "SpecificCharacterSet" in target:
        del target.SpecificCharacterSet
    if not _encodable(target, target.get("SpecificCharacterSet")):
        target.SpecificCharacterSet = UTF8


def _request_item(study_uid: str) -> Dataset:
    item = Dataset()
    item.StudyInstanceUID = study_uid
    for keyword in _REQUEST_TYPE2:
        setattr(item, keyword, [] if keyword.endswith("Sequence") else "")
    return item


def _copy_if_valid(source: Dataset, target: Dataset, keyword: str) -> None:
    element = _valid_element(source, keyword)
    if element is not None and not _is_empty(element):
        target[element.tag] = element


def _valid_items(source: Dataset, keyword: str) -> list[Dataset]:
    element = _valid_element(source, keyword)
    return list(element.value) if element is not None and element.VR == "SQ" else []


def _valid_element(source: Dataset, keyword: str) -> DataElement | None:
    """A deep copy of ``source``'s element ``keyword`` when it and everything it
    holds is valid for its VR; None when absent or invalid."""
    if keyword not in source:
        return None
    element = deepcopy(source[keyword])
    return element if _is_valid(element) else None


def _is_valid(element: DataElement) -> bool:
    if element.VR == "SQ":
        return all(_is_valid(inner) for item in element.value for inner in item)
    values = element.value if isinstance(element.value, MultiValue) else [element.value]
    try:
        for value in values:
            if value is None:
                continue
            if element.VR in ("DS", "IS") and not isinstance(value, (str, bytes)):
                value = str(value)  # DSfloat / IS keep the text they were read from
            validate_value(element.VR, value, config.RAISE)
    except (ValueError, TypeError):
        return False
    return True


def _is_empty(element: DataElement) -> bool:
    value = element.value
    if value is None:
        return True
    if isinstance(value, (str, bytes, DicomSequence, MultiValue, list)):
        return len(value) == 0
    if isinstance(value, PersonName):
        return not str(value)
    return False


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


def _copy_timezone(source: Dataset, target: Dataset) -> None:
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


def _strings(ds: Dataset) -> Iterator[str]:
    for element in ds:
        if element.VR == "SQ":
            for item in element.value:
                yield from _strings(item)
        elif element.VR in _TEXT_VRS and element.value is not None:
            values = element.value if isinstance(element.value, MultiValue) else [element.value]
            for value in values:
                yield str(value)


def _encodable(ds: Dataset, charsets: object) -> bool:
    """Whether every string of ``ds`` has a character in the declared repertoires."""
    try:
        codecs = convert_encodings(charsets)  # type: ignore[arg-type]
    except LookupError:
        return False
    # pydicom names the default repertoire (ISO-IR 6, PS3.5 6.1.2.1) "iso8859", which
    # Python reads as Latin-1: the repertoire itself is ASCII.
    codecs = ["ascii" if codec == "iso8859" else codec for codec in codecs]
    for text in _strings(ds):
        if text.isascii():
            continue
        for char in set(text):
            if not any(_encodes(char, codec) for codec in codecs):
                return False
    return True


def _encodes(char: str, codec: str) -> bool:
    try:
        char.encode(codec)
    except (UnicodeEncodeError, LookupError):
        return False
    return True
