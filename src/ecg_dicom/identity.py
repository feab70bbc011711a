"""Deterministic UIDs for the objects ecg-dicom sends back.

Every UID of a result (the SC and SR series and instances, the tracking UIDs of
the SR's measurement groups) is derived from the source SOP Instance UID and the
model version, under the installation's UID root (PS3.5 9, "Unique Identifiers
(UIDs)"; the root is ``output.uid_root`` in config).  Re-processing the same ECG
with the same model therefore produces byte-for-byte the same identifiers, and a
PACS that receives the result twice stores one SR and one SC, not two
(PS3.4 B.4.1: a C-STORE of a known SOP Instance UID replaces or is ignored,
never duplicated).  A new model version gives a new, distinct result.

:func:`pydicom.uid.generate_uid` with ``entropy_srcs`` hashes its inputs
(SHA-512) into the decimal suffix, so the derivation is stable across
processes, machines and Python versions.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.uid import UID, generate_uid

#: The purpose tag mixed into every derivation, so that our UIDs can never
#: collide with another use of generate_uid over the same inputs.
_NAMESPACE = "ecg-dicom/result/v1"


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


def result_uids(source_sop_instance_uid: str, model_version: str, uid_root: str) -> ResultUIDs:
    """The UIDs of the results for one source instance and one model version.

    The source UID is used as received (stripped of the padding PS3.5 6.2 allows),
    so an ill-formed but stable UID from a sender still maps to stable results.
    """
    source = str(source_sop_instance_uid).strip().rstrip("\x00")
    if not source:
        raise ValueError("the source SOP Instance UID is empty: no result identity can be derived")
    if not model_version:
        raise ValueError("the model version is empty: no result identity can be derived")
    return ResultUIDs(
        sc_series=_derive(uid_root, source, model_version, "sc-series"),
        sc_sop=_derive(uid_root, source, model_version, "sc-instance"),
        sr_series=_derive(uid_root, source, model_version, "sr-series"),
        sr_sop=_derive(uid_root, source, model_version, "sr-instance"),
    )


def tracking_uid(sr_sop_instance_uid: str, index: int, uid_root: str) -> UID:
    """The Tracking Unique Identifier (DCM 112040) of measurement group ``index``
    of an SR (PS3.16 TID 1501/1410): stable for a given SR, distinct per group."""
    return _derive(uid_root, str(sr_sop_instance_uid), "tracking", str(index))


def device_observer_uid(model_name: str, model_version: str, uid_root: str) -> UID:
    """The Device Observer UID (DCM 121012, PS3.16 TID 1004) of one model release:
    the same algorithm and weights always report as the same device."""
    return _derive(uid_root, "device", model_name, model_version)
