"""The DICOM listener: C-ECHO and C-STORE for ECG waveforms and ECG images.

The C-STORE handler only checks and spools.  pynetdicom writes the incoming
data set straight to a file in the spool's ``tmp/`` folder as it arrives
(``STORE_RECV_CHUNKED_DATASET``), so a 300 MB image never sits in memory; the
handler reads the few header elements it needs to check the data set against
its SOP class, fsyncs and renames the file, records it in the ledger, queues
the job and only then answers Success (PS3.4 B.2.3).  It never decodes pixels
or waveforms, renders, infers or sends.

Who may associate is decided when the association is requested: the calling
AE title and the peer's IP address are checked against ``dicom.allowed_callers``
and a stranger gets A-ASSOCIATE-RJ "calling AE title not recognised"
(PS3.8 9.3.4).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from pynetdicom import AE, _config, evt
from pynetdicom.transport import ThreadedAssociationServer

from ecg_dicom import metrics
from ecg_dicom.config import AllowedCaller, Settings
from ecg_dicom.errors import (
    CANNOT_UNDERSTAND,
    SUCCESS,
    DatasetMismatchError,
    EcgDicomError,
    UnreadableDatasetError,
    store_status_for,
)
from ecg_dicom.header import HeaderError, read_header
from ecg_dicom.logs import log_context
from ecg_dicom.queue import JobQueue
from ecg_dicom.sop import (
    ACCEPTED_SOP_CLASSES,
    DOCUMENT_SOP_CLASSES,
    HEMODYNAMIC_WAVEFORM,
    IMAGE_SOP_CLASSES,
    WAVEFORM_SOP_CLASSES,
    transfer_syntaxes_for,
)
from ecg_dicom.spool import Spool

log = logging.getLogger(__name__)

#: A-ASSOCIATE-RJ: rejected-permanent, service-user, calling AE title not recognised.
REJECT_CALLING_AE = (0x01, 0x01, 0x03)
#: Failure status for an object of an accepted SOP class that is not an ECG
#: (a Hemodynamic Waveform whose Modality is not ECG): "cannot understand".
NOT_AN_ECG = CANNOT_UNDERSTAND + 1

# The short string elements the handler reads from a received data set.
_HEADER_VALUES = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "Modality")


def caller_allowed(rules: list[AllowedCaller], ae_title: str, address: str) -> bool:
    """Whether a calling AE title from an IP address may associate."""
    for rule in rules:
        if rule.ae_title not in ("*", ae_title.strip()):
            continue
        if rule.hosts and address not in rule.hosts:
            continue
        return True
    return False


def check_dataset(path: Path, sop_class_uid: str) -> dict[str, str]:
    """Scan the header of a received file and check it matches its SOP class.

    Only top-level element headers are walked (see header.py); pixel and
    waveform data are skipped by their lengths, never decoded.  Returns the
    identifying UIDs.  Raises UnreadableDatasetError or DatasetMismatchError.
    """
    try:
        header = read_header(path, _HEADER_VALUES)
    except (HeaderError, OSError) as exc:
        raise UnreadableDatasetError(f"data set cannot be parsed: {exc}") from exc
    found = header.get("SOPClassUID")
    if found and found != sop_class_uid:
        raise DatasetMismatchError(
            f"SOP Class UID in data set ({found}) differs from the C-STORE's ({sop_class_uid})"
        )
    if not header.get("SOPInstanceUID"):
        raise DatasetMismatchError("SOP Instance UID (0008,0018) is missing")
    if sop_class_uid in WAVEFORM_SOP_CLASSES and not header.has("WaveformSequence"):
        raise DatasetMismatchError("a waveform object without Waveform Sequence (5400,0100)")
    if sop_class_uid in IMAGE_SOP_CLASSES and not (
        header.has("PixelData") or header.has("FloatPixelData")
    ):
        raise DatasetMismatchError("an image object without Pixel Data (7FE0,0010)")
    if sop_class_uid in DOCUMENT_SOP_CLASSES and not header.has("EncapsulatedDocument"):
        raise DatasetMismatchError("an encapsulated PDF without Encapsulated Document (0042,0011)")
    return {
        "sop_instance_uid": header.get("SOPInstanceUID"),
        "study_instance_uid": header.get("StudyInstanceUID"),
        "modality": header.get("Modality"),
    }


class StorageSCP:
    """The listener: owns the pynetdicom AE and its event handlers."""

    def __init__(self, settings: Settings, spool: Spool, queue: JobQueue) -> None:
        self.settings = settings
        self.spool = spool
        self.queue = queue
        self.server: ThreadedAssociationServer | None = None
        self.accepting = True
        ae = AE(ae_title=settings.dicom.ae_title)
        ae.maximum_associations = settings.dicom.max_associations
        ae.maximum_pdu_size = settings.dicom.max_pdu_size
        ae.acse_timeout = settings.dicom.acse_timeout
        ae.dimse_timeout = settings.dicom.dimse_timeout
        ae.network_timeout = settings.dicom.network_timeout
        ae.require_called_aet = settings.dicom.require_called_ae_title
        ae.add_supported_context("1.2.840.10008.1.1")  # Verification
        for sop_class in ACCEPTED_SOP_CLASSES:
            ae.add_supported_context(sop_class, list(transfer_syntaxes_for(sop_class)))
        self.ae = ae

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> int:
        """Start listening (non-blocking); returns the bound port."""
        # Received data sets are written as they arrive into the spool's tmp/
        # folder, on the same file system as the spool, so adoption is a rename.
        _config.STORE_RECV_CHUNKED_DATASET = True
        tempfile.tempdir = str(self.spool.tmp_dir)
        handlers: list[Any] = [
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
        ]
        server = self.ae.start_server(
            (self.settings.dicom.bind_address, self.settings.dicom.port),
            block=False,
            evt_handlers=handlers,
        )
        assert server is not None  # block=False always returns the server
        self.server = server
        port = int(server.server_address[1])
        log.info(
            "DICOM listener started",
            extra={"ae_title": self.settings.dicom.ae_title, "port": port},
        )
        return port

    def stop_accepting(self) -> None:
        """Refuse new associations; running ones finish."""
        self.accepting = False

    def shutdown(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server = None

    # -- handlers (never raise) ------------------------------------------------
    def _on_requested(self, event: Any) -> None:
        try:
            requestor = event.assoc.requestor
            # At EVT_REQUESTED only the A-ASSOCIATE-RQ primitive holds the calling AE.
            ae_title = str(requestor.primitive.calling_ae_title).strip()
            address = str(requestor.address)
            if self.accepting and caller_allowed(
                self.settings.dicom.allowed_callers, ae_title, address
            ):
                return
            metrics.ASSOCIATIONS_REJECTED.inc()
            log.warning(
                "association rejected",
                extra={
                    "calling_ae": ae_title,
                    "peer": address,
                    "why": "shutting down" if not self.accepting else "not in allowed_callers",
                },
            )
            if self.accepting:
                event.assoc.acse.send_reject(*REJECT_CALLING_AE)
            else:
                # rejected-transient, service-provider (presentation), temporary congestion
                event.assoc.acse.send_reject(0x02, 0x03, 0x01)
            event.assoc.is_rejected = True
            # As pynetdicom's own ACSE does after a rejection: wait until the DUL has
            # sent the A-ASSOCIATE-RJ and the peer has closed, then end the association.
            event.assoc.kill()
        except Exception:  # a handler must never raise into pynetdicom
            log.exception("error while checking an association request")

    def _on_echo(self, event: Any) -> int:
        return SUCCESS

    def _on_store(self, event: Any) -> int:
        started = time.perf_counter()
        status = CANNOT_UNDERSTAND
        assoc = event.assoc
        calling_ae = str(assoc.requestor.ae_title).strip()
        peer = str(assoc.requestor.address)
        sop_class = str(event.request.AffectedSOPClassUID)
        sop_instance = str(event.request.AffectedSOPInstanceUID)
        job_id = self.spool.new_job_id()
        metrics.RECEIVED.labels(sop_class=sop_class).inc()
        with log_context(job_id=job_id, calling_ae=calling_ae, sop_instance_uid=sop_instance):
            try:
                status = self._store(event, job_id, sop_class, calling_ae, peer)
            except EcgDicomError as exc:
                status = store_status_for(exc)
                log.warning("C-STORE refused: %s", exc, extra={"status": f"0x{status:04X}"})
            except Exception as exc:  # never leave the handler
                status = store_status_for(exc)
                log.exception("C-STORE failed", extra={"status": f"0x{status:04X}"})
            metrics.ACKNOWLEDGED.labels(status=f"0x{status:04X}").inc()
            metrics.STORE_SECONDS.observe(time.perf_counter() - started)
        return status

    def _store(self, event: Any, job_id: str, sop_class: str, calling_ae: str, peer: str) -> int:
        self.spool.check_free_space()
        received = Path(event.dataset_path)
        header = check_dataset(received, sop_class)
        if sop_class == HEMODYNAMIC_WAVEFORM and header["modality"] != "ECG":
            log.warning("hemodynamic waveform refused: Modality is %r, not ECG", header["modality"])
            return NOT_AN_ECG
        size = received.stat().st_size
        self.spool.adopt_file(job_id, received)
        self.spool.record_received(
            job_id,
            sop_class_uid=sop_class,
            sop_instance_uid=header["sop_instance_uid"],
            study_instance_uid=header["study_instance_uid"],
            calling_ae=calling_ae,
            peer_address=peer,
            size=size,
        )
        try:
            self.queue.enqueue(job_id)
        except Exception:
            # The ledger holds the job; the next start-up (or `jobs retry`) queues it.
            log.exception("could not queue job; it stays received in the ledger")
        log.info("stored", extra={"size": size, "sop_class_uid": sop_class})
        return SUCCESS
