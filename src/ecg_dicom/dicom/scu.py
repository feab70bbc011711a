"""Deliver the results to the PACS by DICOM C-STORE (pynetdicom), SC first, then SR.

Every failure is raised as :class:`~ecg_dicom.errors.DeliveryError` saying whether a
retry can help (``transient``) and, where the peer answered, its ``status``:

==========================================================  ============
what happened                                               transient?
==========================================================  ============
connection refused / unreachable / TCP or ACSE timeout      yes
association rejected, result "rejected-transient" (PS3.8 9.3.4)  yes
TLS handshake failed (certificate not trusted, ours refused...)  yes
association aborted, or no C-STORE response (DIMSE timeout) yes
C-STORE status 0xA7xx "Refused: out of resources" (PS3.4 B.2.3)  yes
association rejected, result "rejected-permanent"            no
no presentation context accepted for a SOP class            no
C-STORE status 0xA9xx, 0xCxxx, 0x01xx and any other failure no
==========================================================  ============

(STOW-RS: :mod:`ecg_dicom.dicom.stow`.)  C-STORE warnings (0xB000, 0xB006, 0xB007:
PS3.4 B.2.3) are successes: the peer stored the object.  Objects are sent in
:func:`~ecg_dicom.results.sending_order` (the SR references the SC; IHE AIR
orders them so), on one association.  What is proposed, and the form each object
is sent in: :mod:`ecg_dicom.dicom.negotiation`.  :func:`send_outputs` returns what
was sent (:class:`~ecg_dicom.dicom.negotiation.SentObject`), so the job records a
fallback.

A destination marked ``tls: true`` is called over DICOM TLS with the certificates
of ``delivery.tls`` (:mod:`ecg_dicom.dicom.tls`); a failed handshake is named in
the error ("TLS handshake with PACS@host:port failed: certificate verify failed: ...").
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pydicom import Dataset
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.pdu import A_ASSOCIATE_RJ
from pynetdicom.status import code_to_category

from ecg_dicom.config import ClientTls, Destination, Settings
from ecg_dicom.dicom.association import RejectResult
from ecg_dicom.dicom.negotiation import SentObject, as_accepted, propose
from ecg_dicom.dicom.tls import client_context, describe, handshake_recorder
from ecg_dicom.errors import ConfigError, DeliveryError, is_transient_status
from ecg_dicom.results import sending_order

# The logger keeps its v0.1 name: log consumers filter on it (docs/architecture.md).
log = logging.getLogger("ecg_dicom.scu")


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
        where = (fixed.ae_title, fixed.host, fixed.port)
        if all((d.ae_title, d.host, d.port) != where for d in found):
            found.append(fixed)
    return found


def _association_failure(
    assoc: Association, destination: Destination, rejections: Sequence[A_ASSOCIATE_RJ],
    tls_failures: Sequence[BaseException] = (),
) -> DeliveryError:
    """Why an association was not established, as a DeliveryError.

    ``rejections`` are the A-ASSOCIATE-RJ PDUs seen on the wire: a peer that closes
    the connection right after rejecting (dcmtk does) can make pynetdicom report an
    abort instead of the rejection, so the PDU itself is the evidence.
    """
    where = destination.where
    if tls_failures:
        return DeliveryError(
            f"TLS handshake with {where} failed: {describe(tls_failures[0])}", transient=True
        )
    answer: Any = assoc.acceptor.primitive
    if rejections or (assoc.is_rejected and answer is not None):
        rj: Any = rejections[0] if rejections else answer
        return DeliveryError(
            f"association rejected by {where} ({rj.result_str}, source {rj.source_str}: "
            f"{rj.reason_str})",
            transient=rj.result == RejectResult.TRANSIENT,
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
    where = destination.where
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


def send_outputs(
    datasets: Sequence[Dataset],
    destination: Destination,
    *,
    calling_ae: str,
    timeout: float,
    uid_root: str = "1.2.826.0.1.3680043.8.498.",
    tls: ClientTls | None = None,
) -> list[SentObject]:
    """C-STORE ``datasets`` (SC first, then SR) to ``destination`` on one association.

    ``timeout`` bounds the TCP connection (and the TLS handshake), each ACSE and
    DIMSE exchange, and network silence (seconds); ``uid_root`` roots the UID of an
    SR sent in a fallback class; ``tls`` (``delivery.tls``) is used when
    ``destination.tls``.  Returns what was sent; raises DeliveryError on the first
    failure.
    """
    if not datasets:
        return []
    ae = AE(ae_title=calling_ae)
    ae.connection_timeout = timeout
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.network_timeout = timeout
    ordered = sending_order(datasets)
    propose(ae, ordered)
    rejections: list[A_ASSOCIATE_RJ] = []

    def on_pdu(event: evt.Event) -> None:
        if isinstance(event.pdu, A_ASSOCIATE_RJ):
            rejections.append(event.pdu)

    tls_failures: list[BaseException] = []
    tls_args = None
    if destination.tls:
        try:  # loaded per association: renewed certificates are taken up
            context = client_context(tls or ClientTls())
        except ConfigError as exc:
            raise DeliveryError(f"TLS to {destination.where}: {exc}", transient=False) from exc
        tls_args = (handshake_recorder(context, tls_failures), destination.host)
    try:
        assoc = ae.associate(
            destination.host, destination.port, ae_title=destination.ae_title,
            evt_handlers=[(evt.EVT_PDU_RECV, on_pdu)], tls_args=tls_args,
        )
    except OSError as exc:
        raise DeliveryError(
            f"could not associate with {destination.where}: {exc}", transient=True
        ) from exc
    if not assoc.is_established:
        raise _association_failure(assoc, destination, rejections, tls_failures)
    accepted = {(str(cx.abstract_syntax), str(cx.transfer_syntax[0]))
                for cx in assoc.accepted_contexts}
    sent: list[SentObject] = []
    try:
        for ds in ordered:
            try:
                out, what = as_accepted(ds, accepted, uid_root)
            except DeliveryError as exc:
                raise DeliveryError(f"{destination.where}: {exc}", transient=False) from exc
            _store_one(assoc, out, destination)
            sent.append(what)
    except BaseException:
        assoc.abort()
        raise
    assoc.release()
    log.info("sent %d object(s) to %s", len(ordered), destination.where,
             extra={"sent": [s.describe() for s in sent]})
    return sent
