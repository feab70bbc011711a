"""Deliver the results to the PACS: DICOM C-STORE (pynetdicom) or DICOMweb STOW-RS (httpx).

Every failure is raised as :class:`~ecg_dicom.errors.DeliveryError` saying whether a
retry can help (``transient``) and, where the peer answered, its ``status``:

==========================================================  ============
what happened                                               transient?
==========================================================  ============
connection refused / unreachable / TCP or ACSE timeout      yes
association rejected, result "rejected-transient" (PS3.8 9.3.4)  yes
association aborted, or no C-STORE response (DIMSE timeout) yes
C-STORE status 0xA7xx "Refused: out of resources" (PS3.4 B.2.3)  yes
association rejected, result "rejected-permanent"            no
no presentation context accepted for a SOP class            no
C-STORE status 0xA9xx, 0xCxxx, 0x01xx and any other failure no
STOW-RS: connection error, timeout, HTTP 5xx, 408, 429      yes
STOW-RS: other HTTP 4xx, failed instances (PS3.18 10.5.3)   by reason
==========================================================  ============

C-STORE warnings (0xB000, 0xB006, 0xB007: PS3.4 B.2.3) are successes: the peer
stored the object.  Objects are sent SC first, then SR, on one association
(the SR references the SC; IHE AIR orders them so).

What is proposed, and what is sent (PS3.7 D.3.3.4: the SCP picks among proposed
presentation contexts):

* the SR as **Comprehensive 3D SR**, else **Comprehensive SR**, else **Enhanced SR**
  (each proposed in its own context), the first the peer accepts and the content
  fits (:func:`sr_fits_class`: no SCOORD3D outside 3D SR, no by-reference
  relationship in Enhanced SR).  In another class the SR is another instance, with
  its own derived SOP Instance UID (:func:`ecg_dicom.results.uids.sr_uid_for_class`);
* the SC in its own (compressed, lossless) transfer syntax, else Deflated Explicit
  VR Little Endian, else uncompressed: decompressed for a peer that takes nothing
  else, never re-compressed lossily.

:func:`send_outputs` returns what was sent (:class:`SentObject`), so the job
records a fallback.
"""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import httpx
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import (
    UID,
    Comprehensive3DSRStorage,
    ComprehensiveSRStorage,
    DeflatedExplicitVRLittleEndian,
    EnhancedSRStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.pdu import A_ASSOCIATE_RJ
from pynetdicom.status import code_to_category

from ecg_dicom.config import Destination, Settings
from ecg_dicom.errors import DeliveryError, is_transient_status
from ecg_dicom.results.uids import sr_uid_for_class

# The logger keeps its v0.1 name: log consumers filter on it (docs/architecture.md).
log = logging.getLogger("ecg_dicom.scu")

#: A-ASSOCIATE-RJ result values (PS3.8 9.3.4).
REJECTED_PERMANENT = 0x01
REJECTED_TRANSIENT = 0x02
#: DICOMweb Failure Reason (0008,1197) and Failed SOP Sequence (0008,1198) (PS3.18 10.5.3).
_FAILED_SOP_SEQUENCE = "00081198"
_FAILURE_REASON = "00081197"
#: HTTP statuses after which a later STOW-RS attempt can succeed.
_TRANSIENT_HTTP = frozenset({408, 425, 429})
#: SR storage classes in order of preference (PS3.4 B.5): the SR is built as the first.
SR_CLASSES: tuple[UID, ...] = (Comprehensive3DSRStorage, ComprehensiveSRStorage, EnhancedSRStorage)
_UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)


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

    def describe(self) -> str:
        what = f"{self.modality} as {UID(self.sop_class_uid).name}"
        if self.modality != "SR":
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


def in_transfer_syntax(ds: Dataset, transfer_syntax: UID) -> Dataset:
    """A copy of an image in another lossless transfer syntax: decompressed (to Explicit
    VR Little Endian, then re-labelled when Implicit or Deflated is asked for)."""
    own = _syntax_of(ds)
    if own == transfer_syntax:
        return ds
    out = copy.deepcopy(ds)
    if own.is_compressed:
        # pydicom 3: native pixels, Explicit VR Little Endian.  The same instance (H3):
        # pydicom would otherwise give it a new SOP Instance UID, and the SR would
        # reference an SC the PACS never receives.
        out.decompress(generate_instance_uid=False)
    if getattr(out, "file_meta", None) is None:
        out.file_meta = FileMetaDataset()
    out.file_meta.TransferSyntaxUID = transfer_syntax
    return out


def _syntax_of(ds: Dataset) -> UID:
    """The transfer syntax a built or read object is encoded in (Explicit VR Little
    Endian when it has no File Meta Information yet)."""
    meta = getattr(ds, "file_meta", None)
    return UID(meta.get("TransferSyntaxUID", ExplicitVRLittleEndian)) if meta else ExplicitVRLittleEndian


def _image_syntaxes(ds: Dataset) -> list[UID]:
    own = _syntax_of(ds)
    order = [own, DeflatedExplicitVRLittleEndian, *_UNCOMPRESSED]
    return list(dict.fromkeys(order))


def destinations_for(calling_ae: str, settings: Settings) -> list[Destination]:
    """Where results of an ECG sent by ``calling_ae`` go: the destination configured
    for that AE title (``delivery.destinations``), then every fixed destination,
    without duplicates.  Empty when neither is configured."""
    delivery = settings.delivery
    found: list[Destination] = []
    mapped = delivery.destinations.get((calling_ae or "").strip())
    if mapped is not None:
        found.append(mapped)
    for fixed in delivery.fixed_destinations:
        if all((d.ae_title, d.host, d.port) != (fixed.ae_title, fixed.host, fixed.port) for d in found):
            found.append(fixed)
    return found


def _ordered(datasets: Sequence[Dataset]) -> list[Dataset]:
    """SC (and any image) before SR, otherwise in the order given."""
    return sorted(datasets, key=lambda ds: 1 if ds.get("Modality") == "SR" else 0)


def _transfer_syntaxes(ds: Dataset) -> list[UID]:
    own = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    syntaxes = [UID(own)] if own else []
    for ts in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        if ts not in syntaxes:
            syntaxes.append(ts)
    return syntaxes


def _where(destination: Destination) -> str:
    return f"{destination.ae_title}@{destination.host}:{destination.port}"


def _association_failure(
    assoc: Association, destination: Destination, rejections: Sequence[A_ASSOCIATE_RJ]
) -> DeliveryError:
    """Why an association was not established, as a DeliveryError.

    ``rejections`` are the A-ASSOCIATE-RJ PDUs seen on the wire: a peer that closes
    the connection right after rejecting (dcmtk does) can make pynetdicom report an
    abort instead of the rejection, so the PDU itself is the evidence.
    """
    where = _where(destination)
    answer: Any = assoc.acceptor.primitive
    if rejections or (assoc.is_rejected and answer is not None):
        rj: Any = rejections[0] if rejections else answer
        return DeliveryError(
            f"association rejected by {where} ({rj.result_str}, source {rj.source_str}: "
            f"{rj.reason_str})",
            transient=rj.result == REJECTED_TRANSIENT,
        )
    if answer is not None and answer.result == 0x00:
        return DeliveryError(
            f"{where} accepted none of the proposed presentation contexts "
            "(SOP class or transfer syntax not supported)",
            transient=False,
        )
    return DeliveryError(
        f"could not associate with {where}: connection refused, unreachable or timed out",
        transient=True,
    )


def _store_one(assoc: Association, ds: Dataset, destination: Destination) -> None:
    where = _where(destination)
    what = f"{ds.get('Modality', '?')} {ds.SOPInstanceUID}"
    try:
        status = assoc.send_c_store(ds)
    except ValueError as exc:  # no accepted context for this SOP class, or not encodable
        raise DeliveryError(f"cannot send {what} to {where}: {exc}", transient=False) from exc
    except (OSError, RuntimeError) as exc:
        raise DeliveryError(f"sending {what} to {where} failed: {exc}", transient=True) from exc
    if not status or "Status" not in status:
        raise DeliveryError(
            f"no C-STORE response from {where} for {what} (timeout, or association aborted)",
            transient=True,
        )
    code = int(status.Status)
    category = code_to_category(code)
    if category in ("Success", "Warning"):
        if category == "Warning":
            log.warning("%s stored %s with warning 0x%04X", where, what, code)
        return
    comment = status.get("ErrorComment", "")
    raise DeliveryError(
        f"{where} refused {what}: status 0x{code:04X} ({category})"
        + (f": {comment}" if comment else ""),
        transient=is_transient_status(code),
        status=code,
    )


def _propose(ae: AE, datasets: Sequence[Dataset]) -> None:
    """One presentation context per (SOP class, transfer syntax choice): the SR in
    each SR class, an image in its own syntax, Deflated and uncompressed."""
    proposed: set[tuple[str, tuple[UID, ...]]] = set()

    def add(sop_class: str, syntaxes: list[UID]) -> None:
        key = (str(sop_class), tuple(syntaxes))
        if key not in proposed:
            proposed.add(key)
            ae.add_requested_context(sop_class, syntaxes)

    for ds in datasets:
        if ds.get("Modality") == "SR" and ds.SOPClassUID in SR_CLASSES:
            for sr_class in SR_CLASSES:
                add(sr_class, list(_UNCOMPRESSED))
        elif ds.get("Modality") == "SR":
            add(ds.SOPClassUID, _transfer_syntaxes(ds))
        else:
            own = _syntax_of(ds)
            if own not in _UNCOMPRESSED:
                add(ds.SOPClassUID, [own])
            if own != DeflatedExplicitVRLittleEndian:
                add(ds.SOPClassUID, [DeflatedExplicitVRLittleEndian])
            add(ds.SOPClassUID, list(_UNCOMPRESSED))


def _as_accepted(
    ds: Dataset, accepted: set[tuple[str, str]], uid_root: str
) -> tuple[Dataset, SentObject]:
    """``ds`` as the peer accepted it, or DeliveryError (permanent) when it accepted no form."""
    modality = str(ds.get("Modality", ""))
    if modality == "SR" and ds.SOPClassUID in SR_CLASSES:
        for sr_class in SR_CLASSES:
            taken = any((sr_class, ts) in accepted for ts in _UNCOMPRESSED)
            if taken and sr_fits_class(ds, sr_class):
                out = sr_as_class(ds, sr_class, uid_root)
                fallback = (
                    "" if sr_class == ds.SOPClassUID
                    else f"the peer does not accept {UID(ds.SOPClassUID).name}"
                )
                return out, SentObject(modality, out.SOPClassUID, out.SOPInstanceUID,
                                       out.SeriesInstanceUID, _syntax_of(out), fallback)
        names = ", ".join(UID(c).name for c in SR_CLASSES)
        raise DeliveryError(f"the peer accepts none of {names} for the SR", transient=False)
    if modality == "SR":
        return ds, SentObject(modality, ds.SOPClassUID, ds.SOPInstanceUID,
                              ds.SeriesInstanceUID, _syntax_of(ds))
    own = _syntax_of(ds)
    for syntax in _image_syntaxes(ds):
        if (ds.SOPClassUID, syntax) in accepted:
            out = in_transfer_syntax(ds, syntax)
            fallback = "" if syntax == own else f"the peer does not accept {own.name}"
            return out, SentObject(modality, out.SOPClassUID, out.SOPInstanceUID,
                                   out.SeriesInstanceUID, syntax, fallback)
    raise DeliveryError(
        f"the peer accepts {UID(ds.SOPClassUID).name} in no transfer syntax we can send",
        transient=False,
    )


def send_outputs(
    datasets: Sequence[Dataset],
    destination: Destination,
    *,
    calling_ae: str,
    timeout: float,
    uid_root: str = "1.2.826.0.1.3680043.8.498.",
) -> list[SentObject]:
    """C-STORE ``datasets`` (SC first, then SR) to ``destination`` on one association.

    ``timeout`` bounds the TCP connection, each ACSE and DIMSE exchange, and
    network silence (seconds); ``uid_root`` roots the UID of an SR sent in a
    fallback class.  Returns what was sent; raises DeliveryError on the first failure.
    """
    if not datasets:
        return []
    ae = AE(ae_title=calling_ae)
    ae.connection_timeout = timeout
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.network_timeout = timeout
    ordered = _ordered(datasets)
    _propose(ae, ordered)
    rejections: list[A_ASSOCIATE_RJ] = []

    def on_pdu(event: evt.Event) -> None:
        if isinstance(event.pdu, A_ASSOCIATE_RJ):
            rejections.append(event.pdu)

    try:
        assoc = ae.associate(
            destination.host, destination.port, ae_title=destination.ae_title,
            evt_handlers=[(evt.EVT_PDU_RECV, on_pdu)],
        )
    except OSError as exc:
        raise DeliveryError(
            f"could not associate with {_where(destination)}: {exc}", transient=True
        ) from exc
    if not assoc.is_established:
        raise _association_failure(assoc, destination, rejections)
    accepted = {(str(cx.abstract_syntax), str(cx.transfer_syntax[0]))
                for cx in assoc.accepted_contexts}
    sent: list[SentObject] = []
    try:
        for ds in ordered:
            try:
                out, what = _as_accepted(ds, accepted, uid_root)
            except DeliveryError as exc:
                raise DeliveryError(f"{_where(destination)}: {exc}", transient=False) from exc
            _store_one(assoc, out, destination)
            sent.append(what)
    except BaseException:
        assoc.abort()
        raise
    assoc.release()
    log.info("sent %d object(s) to %s", len(ordered), _where(destination),
             extra={"sent": [s.describe() for s in sent]})
    return sent


# --- DICOMweb STOW-RS (PS3.18 10.5) --------------------------------------------


def _part10(ds: Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def multipart_body(datasets: Sequence[Dataset], boundary: str) -> bytes:
    """A multipart/related body of application/dicom parts (PS3.18 8.6.1.2)."""
    out = BytesIO()
    for ds in _ordered(datasets):
        out.write(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode("ascii"))
        out.write(_part10(ds))
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode("ascii"))
    return out.getvalue()


def _studies_url(url: str) -> str:
    base = url.rstrip("/")
    return base if base.endswith("/studies") else base + "/studies"


def _failed_reasons(response: httpx.Response) -> list[int]:
    """Failure Reasons of the Failed SOP Sequence of a STOW-RS response, if any."""
    try:
        body = response.json()
    except ValueError:
        return []
    items = body if isinstance(body, list) else [body]
    reasons: list[int] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        failed = item.get(_FAILED_SOP_SEQUENCE, {}).get("Value", [])
        for entry in failed:
            values = entry.get(_FAILURE_REASON, {}).get("Value", [0xC000]) if isinstance(entry, dict) else [0xC000]
            reasons.append(int(values[0]))
    return reasons


def stow_outputs(datasets: Sequence[Dataset], url: str, timeout: float) -> None:
    """Store ``datasets`` with one STOW-RS request to ``url`` (the DICOMweb root or
    its ``/studies`` resource).  Raises DeliveryError when any instance was not stored."""
    if not datasets:
        return
    target = _studies_url(url)
    boundary = f"ecg-dicom-{uuid.uuid4().hex}"
    headers = {
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Accept": "application/dicom+json",
    }
    try:
        response = httpx.post(
            target, content=multipart_body(datasets, boundary), headers=headers, timeout=timeout
        )
    except httpx.TransportError as exc:
        raise DeliveryError(f"STOW-RS to {target} failed: {exc!r}", transient=True) from exc
    except httpx.HTTPError as exc:
        raise DeliveryError(f"STOW-RS to {target} failed: {exc!r}", transient=False) from exc
    code = response.status_code
    reasons = _failed_reasons(response) if code in (200, 202, 409) else []
    if code == 200 and not reasons:
        return
    if code in (202, 409) or reasons:
        if not reasons and code == 202:
            log.warning("STOW-RS to %s: 202 Accepted with warnings", target)
            return
        transient = bool(reasons) and all(is_transient_status(r) for r in reasons)
        shown = ", ".join(f"0x{r:04X}" for r in reasons) or "none given"
        raise DeliveryError(
            f"STOW-RS to {target}: HTTP {code}, failed instances (reasons {shown})",
            transient=transient,
            status=reasons[0] if reasons else None,
        )
    transient = code >= 500 or code in _TRANSIENT_HTTP
    raise DeliveryError(
        f"STOW-RS to {target}: HTTP {code} {response.reason_phrase}", transient=transient
    )
