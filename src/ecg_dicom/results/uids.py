"""Deterministic UIDs for the objects ecg-dicom sends back: UIDs follow content.

Every UID of a result (the SC and SR series and instances, the tracking UIDs of
the SR's measurement groups) is derived from the source SOP Instance UID and a
**content key** (:func:`content_key`) under the installation's UID root (PS3.5 9,
"Unique Identifiers (UIDs)"; the root is ``output.uid_root`` in config).

The content key is a digest of everything the SR and SC are made from: the page
the model read (its pixels: the renderer's output, or the decoded image), the
patient and study attributes copied from the source, the weights' checksum, the
runtime that computed the network, the probability calibration (its tag), the
decision settings (``model.conf``, ``model.abnormal_threshold``, ``model.imgsz``),
the output settings drawn into the
objects, and :data:`OUTPUT_FORMAT`, the version of the builders themselves.

* Same input, weights and settings -> byte-for-byte the same UIDs: a re-send is
  idempotent, and a PACS that receives the result twice stores one SR and one SC
  (PS3.4 B.4.1: a C-STORE of a known SOP Instance UID is one instance).
* Any change of what the content depends on -> new UIDs.  A PACS therefore never
  keeps a stale object under a UID whose content has changed (which it would do
  silently: Orthanc ignores a second C-STORE of a known UID, STOW-RS answers 200);
  the new SR names the one it replaces in its Predecessor Documents Sequence
  (PS3.3 C.17.2.3; see build.py and the ledger's ``outputs`` table).

:func:`pydicom.uid.generate_uid` with ``entropy_srcs`` hashes its inputs
(SHA-512) into the decimal suffix, so the derivation is stable across
processes, machines and Python versions.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from pydicom import Dataset
from pydicom.uid import UID, generate_uid

if TYPE_CHECKING:
    from ecg_dicom.config import Settings
    from ecg_dicom.records import Classification, Page

#: The purpose tag mixed into every derivation, so that our UIDs can never
#: collide with another use of generate_uid over the same inputs.
_NAMESPACE = "ecg-dicom/result/v1"
#: Version of what the builders put into the SR and SC (codes, texts, drawing,
#: compression).  Bump it with any change of the built content: every result
#: built afterwards gets new UIDs and names the one it replaces.
OUTPUT_FORMAT = "4"
#: Source attributes copied into the results (and drawn on the SC): a corrected
#: patient name re-sent under the same SOP Instance UID gives a new result.
IDENTITY_KEYWORDS: tuple[str, ...] = (
    "SpecificCharacterSet", "PatientName", "PatientID", "IssuerOfPatientID",
    "OtherPatientIDsSequence", "PatientBirthDate", "PatientSex", "PatientAge", "PatientSize",
    "PatientWeight", "StudyInstanceUID", "StudyID", "StudyDate", "StudyTime",
    "StudyDescription", "AccessionNumber", "ReferringPhysicianName", "TimezoneOffsetFromUTC",
    "RequestAttributesSequence", "Manufacturer", "ManufacturerModelName",
    "IssuerOfPatientIDQualifiersSequence", "IssuerOfAccessionNumberSequence",
    "ReferringPhysicianIdentificationSequence",
)


@dataclass(frozen=True)
class ResultUIDs:
    """The series and instance UIDs of the SC and SR built for one source instance."""

    sc_series: UID
    sc_sop: UID
    sr_series: UID
    sr_sop: UID


def _derive(uid_root: str, *parts: str) -> UID:
    prefix = uid_root if uid_root.endswith(".") else uid_root + "."
    return generate_uid(prefix, entropy_srcs=[_NAMESPACE, *parts])


def _identity_text(source: Dataset) -> dict[str, str]:
    found: dict[str, str] = {}
    for keyword in IDENTITY_KEYWORDS:
        if keyword in source:
            value = source[keyword].value
            found[keyword] = repr(value) if keyword.endswith("Sequence") else str(value)
    return found


def content_key(source: Dataset, page: Page, result: Classification, settings: Settings) -> str:
    """The digest (SHA-256, hex) of everything a result's content depends on.

    See the module docstring for the list.  Pure: the same inputs give the same
    key in any process, on any machine.
    """
    pixels = np.ascontiguousarray(page.image)
    described = {
        "format": OUTPUT_FORMAT,
        "page": hashlib.sha256(pixels.tobytes()).hexdigest(),
        "page_shape": list(pixels.shape),
        "page_header": list(page.header),
        "px_per_mm": page.px_per_mm,
        "source": _identity_text(source),
        "model": [result.model_name, result.model_version, result.runtime, result.calibration],
        "decision": [settings.model.conf, settings.model.abnormal_threshold, settings.model.imgsz],
        "output": [settings.output.manufacturer, settings.output.institution_name],
    }
    text = json.dumps(described, sort_keys=True, ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def result_uids(source_sop_instance_uid: str, key: str, uid_root: str) -> ResultUIDs:
    """The UIDs of the results for one source instance and one content ``key``
    (:func:`content_key`; any non-empty text in tests).

    The source UID is used as received (stripped of the padding PS3.5 6.2 allows),
    so an ill-formed but stable UID from a sender still maps to stable results.
    """
    source = str(source_sop_instance_uid).strip().rstrip("\x00")
    if not source:
        raise ValueError("the source SOP Instance UID is empty: no result identity can be derived")
    if not key:
        raise ValueError("the content key is empty: no result identity can be derived")
    return ResultUIDs(
        sc_series=_derive(uid_root, source, key, "sc-series"),
        sc_sop=_derive(uid_root, source, key, "sc-instance"),
        sr_series=_derive(uid_root, source, key, "sr-series"),
        sr_sop=_derive(uid_root, source, key, "sr-instance"),
    )


def uids_for(source: Dataset, page: Page, result: Classification, settings: Settings) -> ResultUIDs:
    """The UIDs of the results built from these inputs: :func:`result_uids` of the
    source instance and its :func:`content_key`, under ``output.uid_root``."""
    key = content_key(source, page, result, settings)
    return result_uids(source.SOPInstanceUID, key, settings.output.uid_root)


def sr_uid_for_class(sr_sop_instance_uid: str, sop_class_uid: str, uid_root: str) -> UID:
    """The SOP Instance UID of the SR when it is sent as another SR storage class.

    The content is the same, but an instance of another SOP class is another
    instance (PS3.3 C.12.1.1.1): it gets its own UID, derived, so that a re-send
    in the same class stays idempotent.
    """
    return _derive(uid_root, str(sr_sop_instance_uid), "as-class", str(sop_class_uid))


def series_numbers(base_sc: int, base_sr: int, slot: int) -> tuple[int, int]:
    """Series Numbers (SC, SR) of the results of the ``slot``-th ECG of a study (0-based).

    Several ECGs of one study each get their own pair, so the series stay
    distinct for a reader (Series Number is IS, PS3.3 C.7.3.1): with the defaults
    9901/9902 the first ECG's results are 9901/9902, the second's 9903/9904, ...
    (step 2 when the bases are adjacent, else 1).
    """
    step = 2 if abs(base_sr - base_sc) == 1 else 1
    return base_sc + slot * step, base_sr + slot * step


def tracking_uid(sr_sop_instance_uid: str, index: int, uid_root: str) -> UID:
    """The Tracking Unique Identifier (DCM 112040) of measurement group ``index``
    of an SR (PS3.16 TID 1501/1410): stable for a given SR, distinct per group."""
    return _derive(uid_root, str(sr_sop_instance_uid), "tracking", str(index))


def device_observer_uid(model_name: str, model_version: str, uid_root: str) -> UID:
    """The Device Observer UID (DCM 121012, PS3.16 TID 1004) of one model release:
    the same algorithm and weights always report as the same device."""
    return _derive(uid_root, "device", model_name, model_version)
