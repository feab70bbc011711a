"""The C-STORE handler: check, spool, record, queue, and only then answer.

pynetdicom has written the incoming data set to a file in the spool's ``tmp/``
folder as it arrived (:func:`ecg_dicom.startup.configure_receiving`), so a 300 MB
image never sits in memory.  The handler reads the few header elements it needs
to check the data set against its SOP class (:mod:`ecg_dicom.dicom.ingest`),
fsyncs and renames the file, records it in the ledger, queues the job and only
then answers Success (PS3.4 B.2.3).  It never decodes pixels or waveforms,
renders, infers or sends.

A spool below ``storage.min_free_mb`` (when the data set started to arrive, or
now), or a disk that filled while it arrived (:mod:`ecg_dicom.dicom.receive`),
is answered 0xA700 "out of resources" with the reason in Error Comment; the
association goes on.

An object that is not processed (not an ECG input, our own result, another AI's
burned-in result) is answered by ``dicom.non_ecg_objects``: ``skip`` gives
Success and a ledger row in state ``skipped`` with the reason; ``refuse`` a
failure status (0x0122 for a SOP class that is not an ECG input, PS3.7 C.5.20;
0xC001 for an AI result) with the reason in Error Comment, nothing recorded.
Either way the received bytes are deleted: the ledger row (SOP class and
instance, study, caller, size, reason) is the record, not a copy of the study.

An ECG input whose header declares more than ``limits.*`` allow (a Deflated data
set inflating past the bound, pixels, frames, waveform samples, an identity
value's length: :func:`ecg_dicom.dicom.ingest.check_limits`) is refused with
0xC002 and the limit in Error Comment, nothing kept or recorded: it would fail
the same way every time it was sent.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydicom import Dataset

from ecg_dicom import audit, metrics
from ecg_dicom.config import Settings
from ecg_dicom.dicom.ingest import (
    check_dataset,
    check_inflated_size,
    check_limits,
    result_origin,
    study_of,
    with_identity,
)
from ecg_dicom.dicom.receive import ReceivedFiles
from ecg_dicom.errors import (
    EcgDicomError,
    LimitError,
    StorageError,
    StoreStatus,
    store_status_for,
)
from ecg_dicom.jobs import Arrival, JobQueue, Spool
from ecg_dicom.logs import log_context
from ecg_dicom.sop import ECG_INPUT_SOP_CLASSES, IMAGE_SOP_CLASSES, sop_class_name

# The logger keeps its v0.1 name: log consumers filter on it (docs/architecture.md).
log = logging.getLogger("ecg_dicom.scp")

#: Error Comment (0000,0902) is LO: at most 64 characters (PS3.7 C.4).
_ERROR_COMMENT_MAX = 64


class StoreHandler:
    """The EVT_C_STORE handler of the listener (never raises into pynetdicom)."""

    def __init__(
        self, settings: Settings, spool: Spool, queue: JobQueue,
        received_files: ReceivedFiles | None = None,
    ) -> None:
        self.settings = settings
        self.spool = spool
        self.queue = queue
        #: Where pynetdicom wrote the data sets, and why one was not kept (disk full).
        self.received_files = received_files

    def __call__(self, event: Any) -> int | Dataset:
        started = time.perf_counter()
        status: int | Dataset = StoreStatus.CANNOT_UNDERSTAND
        calling_ae = str(event.assoc.requestor.ae_title).strip()
        sop_class = str(event.request.AffectedSOPClassUID)
        sop_instance = str(event.request.AffectedSOPInstanceUID)
        job_id = self.spool.new_job_id()
        metrics.RECEIVED.labels(sop_class=sop_class).inc()
        with log_context(job_id=job_id, calling_ae=calling_ae, sop_instance_uid=sop_instance):
            try:
                status = self._store(event, job_id, sop_class, calling_ae)
            except EcgDicomError as exc:
                refused = store_status_for(exc)
                log.warning("C-STORE refused: %s", exc, extra={"status": f"0x{refused:04X}"})
                # Out of resources says why in Error Comment (the sender retries later),
                # a limit which one it is.
                said = isinstance(exc, (StorageError, LimitError))
                status = _refusal(refused, str(exc)) if said else refused
            except Exception as exc:  # never leave the handler
                status = store_status_for(exc)
                log.exception("C-STORE failed", extra={"status": f"0x{status:04X}"})
            code = int(status.Status) if isinstance(status, Dataset) else status
            metrics.ACKNOWLEDGED.labels(status=f"0x{code:04X}").inc()
            metrics.STORE_SECONDS.observe(time.perf_counter() - started)
        return status

    def _store(self, event: Any, job_id: str, sop_class: str, calling_ae: str) -> int | Dataset:
        received = Path(event.dataset_path)
        if self.received_files is not None:
            refusal = self.received_files.refusal(received)
            if refusal is not None:  # not kept: the spool was (or became) full
                raise StorageError(refusal)
        arrival = Arrival(
            sop_class, str(event.request.AffectedSOPInstanceUID),
            calling_ae=calling_ae, peer_address=str(event.assoc.requestor.address),
        )
        if sop_class not in ECG_INPUT_SOP_CLASSES:
            return self._decline(
                received, job_id, replace(arrival, study_instance_uid=study_of(received)),
                kind="not_ecg_input", why=f"{sop_class_name(sop_class)} is not an ECG input",
                refuse_status=StoreStatus.SOP_CLASS_NOT_SUPPORTED,
            )
        self.spool.check_free_space()
        limits = self.settings.limits
        check_inflated_size(received, limits)
        header = check_dataset(received, sop_class)
        check_limits(received, sop_class, header, limits)
        arrival = with_identity(replace(
            arrival, sop_instance_uid=header.get("SOPInstanceUID"),
            study_instance_uid=header.get("StudyInstanceUID"),
        ), header)
        if sop_class in IMAGE_SOP_CLASSES:
            origin = result_origin(received, header, self.settings)
            if origin is not None:
                return self._decline(
                    received, job_id, arrival, kind=origin[0], why=origin[1],
                    refuse_status=StoreStatus.NOT_AN_ECG,
                )
        arrival = replace(arrival, size=received.stat().st_size)
        self.spool.adopt_file(job_id, received)
        self.spool.record_received(job_id, arrival)
        try:
            self.queue.enqueue(job_id)
        except Exception:
            # The ledger holds the job; the next start-up (or `jobs retry`) queues it.
            log.exception("could not queue job; it stays received in the ledger")
        log.info("stored", extra={"size": arrival.size, "sop_class_uid": sop_class})
        audit.instances_received(calling_ae, arrival.peer_address, audit.Instances(
            arrival.study_instance_uid, [(sop_class, arrival.sop_instance_uid)],
            patient_id=header.get("PatientID")))
        return StoreStatus.SUCCESS

    def _decline(
        self, received: Path, job_id: str, arrival: Arrival, *, kind: str, why: str,
        refuse_status: StoreStatus,
    ) -> int | Dataset:
        """Answer an object that is not processed: skip (Success + ledger) or refuse.

        The received bytes are deleted either way (see the module docstring).
        """
        try:
            arrival = replace(arrival, size=received.stat().st_size)
        except OSError:
            pass
        received.unlink(missing_ok=True)
        sop_class = arrival.sop_class_uid
        if self.settings.dicom.non_ecg_objects == "refuse":
            log.warning(
                "C-STORE refused: %s", why,
                extra={"status": f"0x{refuse_status:04X}", "sop_class_uid": sop_class},
            )
            return _refusal(refuse_status, why)
        self.spool.record_skipped(job_id, arrival, reason=f"skipped: {why}")
        audit.instances_received(arrival.calling_ae, arrival.peer_address, audit.Instances(
            arrival.study_instance_uid, [(sop_class, arrival.sop_instance_uid)]))
        metrics.SKIPPED.labels(kind=kind).inc()
        log.info("skipped: %s", why, extra={"size": arrival.size, "sop_class_uid": sop_class})
        return StoreStatus.SUCCESS


def _refusal(status: int, why: str) -> Dataset:
    """A failure status with its reason in Error Comment (0000,0902)."""
    answer = Dataset()
    answer.Status = int(status)
    answer.ErrorComment = why[:_ERROR_COMMENT_MAX]
    return answer
