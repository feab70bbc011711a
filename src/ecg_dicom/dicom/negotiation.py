"""What the SCU proposes, and each result as the peer accepted it (PS3.7 D.3.3.4: the
SCP picks among proposed presentation contexts).

* the SR as **Comprehensive 3D SR**, else **Comprehensive SR**, else **Enhanced SR**
  (each proposed in its own context), the first the peer accepts and the content
  fits (:func:`sr_fits_class`: no SCOORD3D outside 3D SR, no by-reference
  relationship in Enhanced SR).  In another class the SR is another instance, with
  its own derived SOP Instance UID (:func:`ecg_dicom.results.uids.sr_uid_for_class`);
* the SC in its own (compressed, lossless) transfer syntax, else Deflated Explicit
  VR Little Endian, else uncompressed: decompressed for a peer that takes nothing
  else (:func:`ecg_dicom.results.sc_for_transfer_syntax`, the same instance),
  never re-compressed lossily.

:func:`as_accepted` says what is sent (:class:`SentObject`), so the job records a
fallback.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from pydicom import Dataset
from pydicom.uid import (
    UID,
    Comprehensive3DSRStorage,
    ComprehensiveSRStorage,
    DeflatedExplicitVRLittleEndian,
    EnhancedSRStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AE

from ecg_dicom.errors import DeliveryError
from ecg_dicom.results import sc_for_transfer_syntax, sr_uid_for_class, syntax_of
from ecg_dicom.sop import SR_MODALITY

#: SR storage classes in order of preference (PS3.4 B.5): the SR is built as the first.
SR_CLASSES: tuple[UID, ...] = (Comprehensive3DSRStorage, ComprehensiveSRStorage, EnhancedSRStorage)
#: The uncompressed transfer syntaxes every peer takes, in order of preference.
UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)


@dataclass(frozen=True)
class SentObject:
    """One object as it went out: its class, instance and transfer syntax, and
    ``fallback`` saying why it differs from what was built ("" when it does not)."""

    modality: str
    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    fallback: str = ""

    @classmethod
    def of(cls, ds: Dataset, syntax: UID, fallback: str = "") -> SentObject:
        return cls(str(ds.get("Modality", "")), ds.SOPClassUID, ds.SOPInstanceUID,
                   ds.SeriesInstanceUID, syntax, fallback)

    def describe(self) -> str:
        what = f"{self.modality} as {UID(self.sop_class_uid).name}"
        if self.modality != SR_MODALITY:
            what += f" in {UID(self.transfer_syntax_uid).name}"
        return what + (f" ({self.fallback})" if self.fallback else "")


def _items(ds: Dataset) -> Iterator[Dataset]:
    for item in ds.get("ContentSequence", []):
        yield item
        yield from _items(item)


def sr_fits_class(ds: Dataset, sop_class_uid: str) -> bool:
    """Whether the SR's content is valid in another SR storage class (PS3.3 A.35):
    Comprehensive SR has no SCOORD3D; Enhanced SR has no SCOORD3D and no
    by-reference relationships (Referenced Content Item Identifier)."""
    if sop_class_uid == Comprehensive3DSRStorage:
        return True
    for item in _items(ds):
        if item.get("ValueType") == "SCOORD3D":
            return False
        if sop_class_uid == EnhancedSRStorage and "ReferencedContentItemIdentifier" in item:
            return False
    return sop_class_uid in SR_CLASSES


def sr_as_class(ds: Dataset, sop_class_uid: str, uid_root: str) -> Dataset:
    """A copy of the SR as an instance of another SR storage class, with its own UID."""
    if ds.SOPClassUID == sop_class_uid:
        return ds
    out = copy.deepcopy(ds)
    out.SOPClassUID = UID(sop_class_uid)
    out.SOPInstanceUID = sr_uid_for_class(ds.SOPInstanceUID, sop_class_uid, uid_root)
    if getattr(out, "file_meta", None) is not None:
        out.file_meta.MediaStorageSOPClassUID = out.SOPClassUID
        out.file_meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
    return out


def image_syntaxes(ds: Dataset) -> list[UID]:
    """The transfer syntaxes an image is offered in, in order of preference."""
    return list(dict.fromkeys([syntax_of(ds), DeflatedExplicitVRLittleEndian, *UNCOMPRESSED]))


def _other_sr_syntaxes(ds: Dataset) -> list[UID]:
    """An SR of a class not in SR_CLASSES: its own syntax, then uncompressed."""
    return list(dict.fromkeys([syntax_of(ds), *UNCOMPRESSED]))


def _is_sr(ds: Dataset) -> bool:
    return ds.get("Modality") == SR_MODALITY


def propose(ae: AE, datasets: Sequence[Dataset]) -> None:
    """One presentation context per (SOP class, transfer syntax choice): the SR in
    each SR class, an image in its own syntax, Deflated and uncompressed."""
    proposed: set[tuple[str, tuple[UID, ...]]] = set()

    def add(sop_class: str, syntaxes: list[UID]) -> None:
        key = (str(sop_class), tuple(syntaxes))
        if key not in proposed:
            proposed.add(key)
            ae.add_requested_context(sop_class, syntaxes)

    for ds in datasets:
        if _is_sr(ds) and ds.SOPClassUID in SR_CLASSES:
            for sr_class in SR_CLASSES:
                add(sr_class, list(UNCOMPRESSED))
        elif _is_sr(ds):
            add(ds.SOPClassUID, _other_sr_syntaxes(ds))
        else:
            own = syntax_of(ds)
            if own not in UNCOMPRESSED:
                add(ds.SOPClassUID, [own])
            if own != DeflatedExplicitVRLittleEndian:
                add(ds.SOPClassUID, [DeflatedExplicitVRLittleEndian])
            add(ds.SOPClassUID, list(UNCOMPRESSED))


def _sr_as_accepted(
    ds: Dataset, accepted: set[tuple[str, str]], uid_root: str
) -> tuple[Dataset, SentObject]:
    for sr_class in SR_CLASSES:
        taken = any((sr_class, ts) in accepted for ts in UNCOMPRESSED)
        if taken and sr_fits_class(ds, sr_class):
            out = sr_as_class(ds, sr_class, uid_root)
            fallback = (
                "" if sr_class == ds.SOPClassUID
                else f"the peer does not accept {UID(ds.SOPClassUID).name}"
            )
            return out, SentObject.of(out, syntax_of(out), fallback)
    names = ", ".join(UID(c).name for c in SR_CLASSES)
    raise DeliveryError(f"the peer accepts none of {names} for the SR", transient=False)


def as_accepted(
    ds: Dataset, accepted: set[tuple[str, str]], uid_root: str
) -> tuple[Dataset, SentObject]:
    """``ds`` as the peer accepted it, or DeliveryError (permanent) when it accepted no form.

    ``accepted`` holds the (SOP class, transfer syntax) pairs of the accepted contexts.
    """
    if _is_sr(ds) and ds.SOPClassUID in SR_CLASSES:
        return _sr_as_accepted(ds, accepted, uid_root)
    if _is_sr(ds):
        return ds, SentObject.of(ds, syntax_of(ds))
    own = syntax_of(ds)
    for syntax in image_syntaxes(ds):
        if (ds.SOPClassUID, syntax) in accepted:
            # A lossless change of syntax keeps the SOP Instance UID: the SR references it.
            out = ds if syntax == own else sc_for_transfer_syntax(ds, syntax)
            fallback = "" if syntax == own else f"the peer does not accept {own.name}"
            return out, SentObject.of(out, syntax, fallback)
    raise DeliveryError(
        f"the peer accepts {UID(ds.SOPClassUID).name} in no transfer syntax we can send",
        transient=False,
    )
