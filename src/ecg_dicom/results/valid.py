"""Strict writing: a value copied from the sender goes into a result only when valid.

A value that is not valid for its VR (e.g. Patient's Age "45" rather than
"045Y", PS3.5 6.2), or a sequence holding one, is left out, never copied into
our object (:func:`valid_element`); empty values count as absent (:func:`is_empty`).
"""

from __future__ import annotations

from copy import deepcopy

from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from pydicom.valuerep import PersonName, validate_value


def copy_if_valid(source: Dataset, target: Dataset, keyword: str) -> None:
    """Copy ``source``'s element ``keyword`` into ``target`` when it is valid and not empty."""
    element = valid_element(source, keyword)
    if element is not None and not is_empty(element):
        target[element.tag] = element


def valid_items(source: Dataset, keyword: str) -> list[Dataset]:
    """The items of ``source``'s sequence ``keyword`` when it is valid; else none."""
    element = valid_element(source, keyword)
    return list(element.value) if element is not None and element.VR == "SQ" else []


def valid_element(source: Dataset, keyword: str) -> DataElement | None:
    """A deep copy of ``source``'s element ``keyword`` when it and everything it
    holds is valid for its VR; None when absent or invalid."""
    if keyword not in source:
        return None
    element = deepcopy(source[keyword])
    return element if is_valid(element) else None


def is_valid(element: DataElement) -> bool:
    """Whether ``element`` and everything it holds is valid for its VR."""
    if element.VR == "SQ":
        return all(is_valid(inner) for item in element.value for inner in item)
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


def is_empty(element: DataElement) -> bool:
    """Whether ``element`` holds no value (an empty string, sequence or name)."""
    value = element.value
    if value is None:
        return True
    if isinstance(value, (str, bytes, DicomSequence, MultiValue, list)):
        return len(value) == 0
    if isinstance(value, PersonName):
        return not str(value)
    return False
