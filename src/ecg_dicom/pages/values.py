"""Every value of a data set converted once, at the read, so a malformed one is an
input error naming its attribute instead of an exception deep inside whatever reads
it first (the page readers, highdicom copying it into the results).

pydicom converts a value from its bytes only when it is first used: a VR changed to
one that does not exist, bytes that do not fit their VR (a UID read as FD), a
sequence whose items end mid-tag.  :func:`check_values` walks the data set without
recursion, nested sequences included (down to :data:`MAX_DEPTH` levels: deeper ones
are refused by the results' own check), and converts each value; values deferred by
the read (large pixel or waveform data, still in the file) are left where they are.
The error names the attribute and its VR, never the value (it may be a patient's).
"""

from __future__ import annotations

import struct

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import BaseTag

from ecg_dicom.errors import InputError
from ecg_dicom.results import tag_name

#: Nesting walked (the results refuse more than 32 levels: source.MAX_SEQUENCE_DEPTH).
MAX_DEPTH = 33
#: What Python values a VR gives: a value of another kind than its attribute's VR in the
#: data dictionary (a UID sent as US, a sequence as OB) is refused by :func:`check_values`,
#: since every reader takes the dictionary's word for it.
_KINDS = {
    **dict.fromkeys(("AE", "AS", "CS", "DA", "DT", "LO", "LT", "SH", "ST", "TM", "UC", "UI",
                     "UR", "UT"), "text"),
    "PN": "person name",
    **dict.fromkeys(("DS", "IS", "US", "SS", "UL", "SL", "UV", "SV", "FL", "FD", "AT"),
                    "number"),
    **dict.fromkeys(("OB", "OW", "OD", "OF", "OL", "OV", "UN"), "bytes"),
    "SQ": "sequence",
}
#: What pydicom raises converting a value whose bytes do not fit its VR.
_CONVERSION_ERRORS: tuple[type[Exception], ...] = (
    ValueError, TypeError, OverflowError, NotImplementedError, struct.error, OSError,
    EOFError, IndexError, KeyError, BytesLengthException,
)


def check_values(ds: Dataset) -> None:
    """Convert every value of ``ds``; raise :class:`InputError` naming the first that
    cannot be."""
    pending: list[tuple[Dataset, int]] = [(ds, 0)]
    while pending:
        current, depth = pending.pop()
        for tag in list(current.keys()):
            element = _convert(current, tag)
            if element is None:
                continue  # deferred: still in the file, read by whoever needs it
            _check_kind(tag, str(element.VR))
            if depth < MAX_DEPTH and isinstance(element.value, DicomSequence):
                pending.extend((item, depth + 1) for item in element.value
                               if isinstance(item, Dataset))


def _convert(ds: Dataset, tag: BaseTag) -> DataElement | None:
    """The element converted (None for a deferred value: it is not read here)."""
    raw = ds._dict.get(tag)  # as read: get_item already converts some VRs
    if isinstance(raw, RawDataElement) and raw.value is None and raw.length:
        return None
    try:
        return ds[tag]
    except RecursionError as exc:
        raise InputError(f"{tag_name(tag)} nests sequences too deeply") from exc
    except _CONVERSION_ERRORS as exc:
        vr = getattr(raw, "VR", None) or "?"
        raise InputError(f"{tag_name(tag)} cannot be read as VR {str(vr)[:4]}: "
                         f"{type(exc).__name__}") from exc


def _check_kind(tag: BaseTag, vr: str) -> None:
    if tag.is_private:
        return
    try:
        expected = dictionary_VR(tag)
    except KeyError:  # not in the dictionary: nothing to compare with
        return
    kinds = {_KINDS.get(v.strip()) for v in expected.split(" or ")}
    kind = _KINDS.get(vr)
    if kind is not None and None not in kinds and kind not in kinds:
        raise InputError(f"{tag_name(tag)} has VR {vr[:4]}, not {expected}: a value of "
                         "another kind")
