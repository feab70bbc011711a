"""What a source ECG must hold before its results can be built.

Checked before building (:func:`check_source`), so a job with such an input fails
at once with the attribute named (:class:`~ecg_dicom.errors.InputError`) instead
of raising deep inside highdicom or pydicom and being retried as if it were a bug:

* the identity the results are derived from and refer to: Study, Series and SOP
  Instance UIDs (PS3.3 C.7.2.1, C.7.3.1, C.12.1);
* the values highdicom copies into both results and converts on the way (Study
  Date/Time, Patient's Birth Date as DA/TM; Patient's Sex as M, F or O);
* sequences nested no deeper than :data:`MAX_SEQUENCE_DEPTH` levels: the results copy
  sequences from the source, and Python recursion ends long before a hostile
  sender's nesting does.
"""

from __future__ import annotations

from highdicom.enum import PatientSexValues
from pydicom.datadict import dictionary_description
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag
from pydicom.valuerep import DA, TM

from ecg_dicom.errors import InputError

#: Deepest sequence nesting accepted (an ECG's own nests 3 or 4 levels deep).
MAX_SEQUENCE_DEPTH = 32

_IDENTITY = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
_DATES = ("StudyDate", "PatientBirthDate")
_TIMES = ("StudyTime",)
#: Values never quoted in an error (they would reach the logs and the ledger).
_PHI = frozenset({"PatientBirthDate"})
_SEXES = frozenset(v.value for v in PatientSexValues)


def name_of(keyword: str) -> str:
    """An attribute as the standard writes it, with its tag: "Study Date (0008,0020)"."""
    return tag_name(Tag(keyword))


def check_source(source: Dataset) -> None:
    """Raise :class:`InputError` naming the attribute when ``source`` cannot give results."""
    for keyword in _IDENTITY:
        if not str(source.get(keyword, "") or "").strip():
            raise InputError(f"{name_of(keyword)} is missing or empty: the results cannot "
                             "refer to the ECG")
    for keyword in (*_IDENTITY, "SOPClassUID"):
        if not isinstance(source.get(keyword), str):
            raise InputError(f"{name_of(keyword)} is not one UID: the results cannot refer "
                             "to the ECG")
    for keyword in (*_DATES, *_TIMES):
        value = source.get(keyword)
        if value in (None, ""):
            continue
        try:
            (DA if keyword in _DATES else TM)(value)
        except (ValueError, TypeError, OverflowError) as exc:
            # A birth date identifies a patient: never in a log line or a job's reason.
            shown = "" if keyword in _PHI else f" {str(value)[:64]!r}"
            detail = "" if keyword in _PHI else f": {exc}"
            raise InputError(f"{name_of(keyword)}{shown} is not a valid "
                             f"{'date' if keyword in _DATES else 'time'}{detail}") from exc
    sex = source.get("PatientSex")
    if sex not in (None, "") and str(sex) not in _SEXES:
        raise InputError(f"{name_of('PatientSex')} {str(sex)[:64]!r} is not M, F or O")
    _check_depth(source)


def _check_depth(source: Dataset) -> None:
    """Walk the sequences without recursion; raise when one nests too deeply."""
    pending: list[tuple[Dataset, int, str]] = [(source, 0, "")]
    while pending:
        ds, depth, top = pending.pop()
        for element in ds.elements():
            if element.VR != "SQ" or not isinstance(element.value, DicomSequence):
                continue
            where = top or tag_name(element.tag)
            if depth + 1 > MAX_SEQUENCE_DEPTH:
                raise InputError(f"{where} nests sequences more than {MAX_SEQUENCE_DEPTH} "
                                 "levels deep")
            pending.extend((item, depth + 1, where) for item in element.value
                           if isinstance(item, Dataset))


def tag_name(value: int) -> str:
    """An attribute as the standard writes it, with its tag: "Study Date (0008,0020)"."""
    tag = Tag(value)
    where = f"({tag.group:04X},{tag.element:04X})"
    try:
        return f"{dictionary_description(tag)} {where}"
    except KeyError:  # a private or unknown tag
        return where
