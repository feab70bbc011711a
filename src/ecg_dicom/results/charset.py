"""Specific Character Set (0008,0005) of a result (PS3.3 C.12.1.1.2; PS3.5 6.1).

The target declares the source's character set (:func:`character_set_for`), and
``ISO_IR 192`` (UTF-8) when a value it holds (for example the configured
institution name) is outside that repertoire, so pydicom encodes every string
as it reads (:func:`declare_character_set`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from highdicom.enum import SpecificCharacterSetValues
from highdicom.valuerep import _check_specific_character_set
from pydicom.charset import convert_encodings
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

# The logger keeps its v0.1 name: log consumers filter on it (docs/architecture.md).
log = logging.getLogger("ecg_dicom.context")

UTF8 = "ISO_IR 192"
#: The Specific Character Set values highdicom writes (its SpecificCharacterSetValues).
_HIGHDICOM_CHARSETS = frozenset(v.value for v in SpecificCharacterSetValues)
_TEXT_VRS = {"SH", "LO", "ST", "LT", "UT", "UC", "PN"}


def character_set_for(source: Dataset) -> str | list[str] | None:
    """The Specific Character Set a result of ``source`` declares (PS3.3 C.12.1.1.2).

    The source's own, with an empty first value of a multi-valued one written as
    "ISO 2022 IR 6" (what the standard says it means; highdicom refuses the empty
    value); None for the default repertoire.  A value highdicom cannot write
    (e.g. "ISO 2022 IR 149", Korean) or that is not a defined term at all gives
    "ISO_IR 192": every string was decoded when read, and UTF-8 holds them all.
    So does a combination of defined terms highdicom refuses (code extensions
    named alone, "ISO 2022 IR 100"; several values without code extensions).
    """
    raw = source.get("SpecificCharacterSet")
    values = [str(v).strip() for v in (raw if isinstance(raw, MultiValue) else [raw or ""])]
    if len(values) > 1 and not values[0]:
        values[0] = "ISO 2022 IR 6"
    if values in ([""], ["ISO_IR 6"]):
        return None
    if all(v in _HIGHDICOM_CHARSETS for v in values) and _writable(values):
        return values[0] if len(values) == 1 else values
    log.warning("Specific Character Set %r of the source is declared as %s", raw, UTF8)
    return UTF8


def _writable(values: list[str]) -> bool:
    """Whether highdicom accepts the combination (its own check, which the SC and SR
    constructors run)."""
    try:
        _check_specific_character_set(values[0] if len(values) == 1 else values)
    except ValueError:
        return False
    return True


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
