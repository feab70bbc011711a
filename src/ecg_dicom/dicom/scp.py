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

What is processed is decided per object, never by refusing an association: every
storage SOP class is accepted at negotiation (sop.STORAGE_SOP_CLASSES), so that a
PACS sending a whole study (the ECG beside earlier SR, SC, KO, PR...) gets the
association and its ECG through; "send study" otherwise fails as a whole.  Then,
by ``dicom.non_ecg_objects`` (``skip``: Success and a ledger row in state
``skipped`` with the reason, the received bytes deleted; ``refuse``: a failure
status with the reason in Error Comment, nothing recorded):

* an object whose SOP class is not an ECG input (SR, PR, KO, CT...) is declined
  ("Comprehensive 3D SR Storage is not an ECG input"; refuse: 0x0122, PS3.7 C.5.20);
* an image that is our own result is declined, always (``skip_ai_results`` does
  not apply): its Contributing Equipment (0018,A001) has a Processing Algorithm
  item (Newcode1, 99IHE, IHE AIR) whose Manufacturer is ``output.manufacturer``,
  or its SOP Instance UID is under ``output.uid_root`` — alone when the root is
  the site's own, together with Manufacturer (0008,0070) = ``output.manufacturer``
  when it is pydicom's shared default root, which other software also generates
  UIDs under (refuse: 0xC001);
* with ``dicom.skip_ai_results`` (default), an image another AI burned its result
  into: Burned In Annotation (0028,0301) YES and a Processing Algorithm item in
  Contributing Equipment (refuse: 0xC001).

Keeping the bytes of declined objects would fill the spool with whole studies for
nothing: the ledger row (SOP class and instance, study, caller, size, reason) is
the record.  The ECG waveforms' path stays the fast top-level scan: only an image
whose header has Contributing Equipment or a UID under our root is read further,
with pydicom, stopping before the pixels.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from pydicom import Dataset, dcmread
from pydicom.uid import PYDICOM_ROOT_UID
from pynetdicom import AE, _config, evt
from pynetdicom.transport import ThreadedAssociationServer

from ecg_dicom import metrics
from ecg_dicom.config import AllowedCaller, Settings
from ecg_dicom.dicom.scan import Header, HeaderError, read_header
from ecg_dicom.sop import (
    DOCUMENT_SOP_CLASSES,
    ECG_INPUT_SOP_CLASSES,
    IMAGE_SOP_CLASSES,
    PROCESSING_ALGORITHM,
    STORAGE_SOP_CLASSES,
    WAVEFORM_SOP_CLASSES,
    sop_class_name,
    transfer_syntaxes_for,
)
from ecg_dicom.errors import (
    CANNOT_UNDERSTAND,
    SOP_CLASS_NOT_SUPPORTED,
    SUCCESS,
    DatasetMismatchError,
    EcgDicomError,
    UnreadableDatasetError,
    store_status_for,
)
from ecg_dicom.jobs.queue import JobQueue
from ecg_dicom.jobs.spool import Spool
from ecg_dicom.logs import log_context

# The logger keeps its v0.1 name: log consumers filter on it (docs/architecture.md).
log = logging.getLogger("ecg_dicom.scp")

#: A-ASSOCIATE-RJ: rejected-permanent, service-user, calling AE title not recognised.
REJECT_CALLING_AE = (0x01, 0x01, 0x03)
#: Failure status (``dicom.non_ecg_objects: refuse``) for an image of an ECG input
#: class that is an AI result (ours or another's): in the "cannot understand"
#: range (PS3.4 B.2.3), since the SOP class itself is supported.
NOT_AN_ECG = CANNOT_UNDERSTAND + 1
#: Error Comment (0000,0902) is LO: at most 64 characters (PS3.7 C.4).
_ERROR_COMMENT_MAX = 64

# The short string elements the handler reads from a received data set.
_HEADER_VALUES = (
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "Modality",
    "BurnedInAnnotation", "Manufacturer",
)


def caller_allowed(rules: list[AllowedCaller], ae_title: str, address: str) -> bool:
    """Whether a calling AE title from an IP address may associate."""
    for rule in rules:
        if rule.ae_title not in ("*", ae_title.strip()):
            continue
        if rule.hosts and address not in rule.hosts:
            continue
        return True
    return False


def check_dataset(path: Path, sop_class_uid: str) -> Header:
    """Scan the header of a received file and check it matches its SOP class.

    Only top-level element headers are walked (see header.py); pixel and
    waveform data are skipped by their lengths, never decoded.  Returns the
    header.  Raises UnreadableDatasetError or DatasetMismatchError.
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
    return header


def _is_processing_algorithm(item: Dataset) -> bool:
    """Whether a Contributing Equipment item's Purpose of Reference is IHE AIR's
    (Newcode1, 99IHE, "Processing Algorithm")."""
    for code in item.get("PurposeOfReferenceCodeSequence") or []:
        value = str(code.get("CodeValue", "")).strip()
        scheme = str(code.get("CodingSchemeDesignator", "")).strip()
        meaning = str(code.get("CodeMeaning", "")).strip()
        if (value, scheme) == PROCESSING_ALGORITHM[:2] or meaning.lower() == "processing algorithm":
            return True
    return False


def _equipment_name(item: Dataset) -> str:
    parts = [str(item.get(k, "") or "").strip() for k in ("Manufacturer", "ManufacturerModelName")]
    return " / ".join(p for p in parts if p) or "an unnamed algorithm"


def result_origin(path: Path, header: Header, settings: Settings) -> tuple[str, str] | None:
    """Whether a received image is an AI result: ``(kind, why)`` or None.

    ``kind`` is "own_result" (an ecg-dicom result: always declined) or
    "ai_result" (another AI's burned-in result: declined when
    ``dicom.skip_ai_results``).  See the module docstring for the rules.  Reads
    nothing more than the header scan unless the image has Contributing
    Equipment or a UID under our root; then only its header, with pydicom.
    """
    root = settings.output.uid_root
    ours = settings.output.manufacturer.strip()
    under_root = header.get("SOPInstanceUID").startswith(root)
    if under_root and root != PYDICOM_ROOT_UID:
        return "own_result", f"an ecg-dicom result (SOP Instance UID under output.uid_root {root})"
    if under_root and ours and header.get("Manufacturer") == ours:
        return "own_result", f"an ecg-dicom result (UID root {root}, Manufacturer {ours!r})"
    if not header.has("ContributingEquipmentSequence"):
        return None
    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=["ContributingEquipmentSequence"])
        items = list(ds.get("ContributingEquipmentSequence") or [])
    except Exception as exc:  # pydicom raises many types on a malformed sequence
        raise UnreadableDatasetError(
            f"Contributing Equipment Sequence (0018,A001) cannot be parsed: {exc}"
        ) from exc
    algorithms = [item for item in items if _is_processing_algorithm(item)]
    for item in algorithms:
        if ours and str(item.get("Manufacturer", "") or "").strip() == ours:
            return "own_result", (
                f"an ecg-dicom result (Contributing Equipment names {_equipment_name(item)} "
                "as its processing algorithm)"
            )
    if settings.dicom.skip_ai_results and algorithms and header.get("BurnedInAnnotation") == "YES":
        return "ai_result", f"burned-in AI result of {_equipment_name(algorithms[0])}"
    return None


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
        # Every storage class (see the module docstring); the ECG inputs with the
        # transfer syntaxes we decode, the others with any (never decoded).
        for sop_class in STORAGE_SOP_CLASSES:
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

    def _on_store(self, event: Any) -> int | Dataset:
        started = time.perf_counter()
        status: int | Dataset = CANNOT_UNDERSTAND
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
            code = int(status.Status) if isinstance(status, Dataset) else status
            metrics.ACKNOWLEDGED.labels(status=f"0x{code:04X}").inc()
            metrics.STORE_SECONDS.observe(time.perf_counter() - started)
        return status

    def _store(
        self, event: Any, job_id: str, sop_class: str, calling_ae: str, peer: str
    ) -> int | Dataset:
        received = Path(event.dataset_path)
        if sop_class not in ECG_INPUT_SOP_CLASSES:
            return self._decline(
                received, job_id, sop_class, str(event.request.AffectedSOPInstanceUID),
                calling_ae, peer, kind="not_ecg_input",
                why=f"{sop_class_name(sop_class)} is not an ECG input",
                refuse_status=SOP_CLASS_NOT_SUPPORTED,
            )
        self.spool.check_free_space()
        header = check_dataset(received, sop_class)
        if sop_class in IMAGE_SOP_CLASSES:
            origin = result_origin(received, header, self.settings)
            if origin is not None:
                return self._decline(
                    received, job_id, sop_class, header.get("SOPInstanceUID"), calling_ae, peer,
                    kind=origin[0], why=origin[1], refuse_status=NOT_AN_ECG,
                    study=header.get("StudyInstanceUID"),
                )
        size = received.stat().st_size
        self.spool.adopt_file(job_id, received)
        self.spool.record_received(
            job_id,
            sop_class_uid=sop_class,
            sop_instance_uid=header.get("SOPInstanceUID"),
            study_instance_uid=header.get("StudyInstanceUID"),
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

    def _decline(
        self,
        received: Path,
        job_id: str,
        sop_class: str,
        sop_instance: str,
        calling_ae: str,
        peer: str,
        *,
        kind: str,
        why: str,
        refuse_status: int,
        study: str | None = None,
    ) -> int | Dataset:
        """Answer an object that is not processed: skip (Success + ledger) or refuse.

        The received bytes are deleted either way (see the module docstring).
        """
        try:
            size = received.stat().st_size
        except OSError:
            size = 0
        if study is None:
            try:  # for the ledger only: an unreadable header does not matter here
                study = read_header(received, ("StudyInstanceUID",)).get("StudyInstanceUID")
            except (HeaderError, OSError):
                study = ""
        received.unlink(missing_ok=True)
        if self.settings.dicom.non_ecg_objects == "refuse":
            log.warning(
                "C-STORE refused: %s", why,
                extra={"status": f"0x{refuse_status:04X}", "sop_class_uid": sop_class},
            )
            answer = Dataset()
            answer.Status = refuse_status
            answer.ErrorComment = why[:_ERROR_COMMENT_MAX]
            return answer
        self.spool.record_skipped(
            job_id,
            sop_class_uid=sop_class,
            sop_instance_uid=sop_instance,
            study_instance_uid=study,
            calling_ae=calling_ae,
            peer_address=peer,
            size=size,
            reason=f"skipped: {why}",
        )
        metrics.SKIPPED.labels(kind=kind).inc()
        log.info("skipped: %s", why, extra={"size": size, "sop_class_uid": sop_class})
        return SUCCESS
