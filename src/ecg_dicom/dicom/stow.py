"""Deliver the results by DICOMweb STOW-RS (PS3.18 10.5), one request for SC and SR.

Every failure is raised as :class:`~ecg_dicom.errors.DeliveryError` saying whether a
retry can help (``transient``):

==========================================================  ============
what happened                                               transient?
==========================================================  ============
connection error, timeout, HTTP 5xx, 408, 425, 429          yes
other HTTP 4xx                                              no
failed instances (PS3.18 10.5.3)                            by reason
==========================================================  ============

A failure reason is transient as a C-STORE status is (0xA7xx: out of resources).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from io import BytesIO

import httpx
from pydicom import Dataset

from ecg_dicom.errors import DeliveryError, StoreStatus, is_transient_status
from ecg_dicom.results import encode_part10, sending_order

# The logger keeps its v0.1 name: log consumers filter on it (docs/architecture.md).
log = logging.getLogger("ecg_dicom.scu")

#: DICOMweb Failure Reason (0008,1197) and Failed SOP Sequence (0008,1198) (PS3.18 10.5.3).
_FAILED_SOP_SEQUENCE = "00081198"
_FAILURE_REASON = "00081197"
#: HTTP statuses after which a later STOW-RS attempt can succeed.
_TRANSIENT_HTTP = frozenset({408, 425, 429})


def multipart_body(datasets: Sequence[Dataset], boundary: str) -> bytes:
    """A multipart/related body of application/dicom parts (PS3.18 8.6.1.2)."""
    out = BytesIO()
    for ds in sending_order(datasets):
        out.write(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode("ascii"))
        out.write(encode_part10(ds))
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
            values = [StoreStatus.CANNOT_UNDERSTAND]
            if isinstance(entry, dict):
                values = entry.get(_FAILURE_REASON, {}).get("Value", values)
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
