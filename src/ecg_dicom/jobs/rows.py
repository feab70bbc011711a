"""The rows of the job ledger: :class:`Job` (one row, as read) and :class:`Arrival`
(what one C-STORE or upload brings, as its row records it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ecg_dicom.jobs.state import JobState


@dataclass(frozen=True)
class Job:
    """One row of the ledger."""

    job_id: str
    state: JobState
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    calling_ae: str
    peer_address: str
    size: int
    attempts: int
    delivery_attempts: int
    reason: str
    result: dict[str, Any]
    received_at: float
    updated_at: float
    #: When the destination was first found unreachable (0: it never was, or a
    #: ``jobs retry`` started a new window).
    waiting_since: float = 0.0
    #: When a ``waiting`` job is tried again (epoch seconds).
    next_attempt_at: float = 0.0
    #: "dicom" (received by C-STORE) or "upload" (the viewer's or the API's upload).
    origin: str = "dicom"
    #: Patient and study as the header states them (Patient's Name in DICOM form).
    patient_name: str = ""
    patient_id: str = ""
    study_date: str = ""
    study_description: str = ""
    #: An upload's file name.
    filename: str = ""
    #: The result's label, probability and detector class ("" / None: no result).
    label: str = ""
    probability: float | None = None
    class_name: str = ""
    #: "sent", "not sent", "waiting", "failed" or "" (see jobs.listing.delivery_sql).
    delivery: str = ""
    #: Where the results went or are going (``AE@host:port``, comma-separated).
    destination: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Arrival:
    """What arrived in one C-STORE, as its ledger row records it."""

    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str = ""
    calling_ae: str = ""
    peer_address: str = ""
    #: Bytes received.
    size: int = 0
    #: Patient and study from the header (for the viewer's list; "" when absent).
    patient_name: str = ""
    patient_id: str = ""
    study_date: str = ""
    study_description: str = ""
    #: "dicom", or "upload" with the uploaded file's name.
    origin: str = "dicom"
    filename: str = ""
