"""Who may associate with the listener, and the one WARNING line each refusal gets.

The calling AE title and the peer's IP address are checked against
``dicom.allowed_callers``: the address alone already when the connection is
accepted (:mod:`ecg_dicom.dicom.guard`, before anything is read), the AE title
when the association is requested; a stranger gets A-ASSOCIATE-RJ "calling AE
title not recognised", and while the service shuts down every request gets a
transient rejection (PS3.8 9.3.4).  Addresses are compared as IP addresses: an
IPv4 caller on a dual-stack ("::") listener, seen as ``::ffff:127.0.0.1``, is
``127.0.0.1``.  What is processed is decided later, per object
(:mod:`ecg_dicom.dicom.ingest`), never by refusing an association.

Every refusal, wherever it is decided (here, at accept, before or during an
association, or by pynetdicom: the association limit, the called AE title), is
logged once at WARNING with its reason and the peer's address (:data:`REFUSALS`),
and counted in ``ecgdicom_refused_total{reason}``.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from enum import IntEnum
from typing import Any

from ecg_dicom import audit, metrics
from ecg_dicom.config import AllowedCaller

# The logger keeps its v0.1 name: log consumers filter on it (docs/architecture.md).
log = logging.getLogger("ecg_dicom.scp")


class RejectResult(IntEnum):
    """A-ASSOCIATE-RJ Result (PS3.8 9.3.4)."""

    PERMANENT = 0x01
    TRANSIENT = 0x02


#: Rejected-permanent, service-user, calling AE title not recognised.
REJECT_CALLING_AE = (RejectResult.PERMANENT, 0x01, 0x03)
#: Rejected-transient, service-provider (presentation), temporary congestion.
REJECT_SHUTTING_DOWN = (RejectResult.TRANSIENT, 0x03, 0x01)
#: Rejected-transient, service-provider (presentation), local limit exceeded.
REJECT_LIMIT = (RejectResult.TRANSIENT, 0x03, 0x02)

#: pynetdicom's own rejections (EVT_REJECTED): (result, source, diagnostic) -> reason.
_PYNETDICOM_REJECTIONS = {
    (0x02, 0x03, 0x02): ("association_limit", "association limit reached (dicom.max_associations)"),
    (0x01, 0x01, 0x07): ("called_ae", "called AE title is not ours"),
    (0x01, 0x01, 0x03): ("calling_ae", "calling AE title not recognised"),
    (0x02, 0x02, 0x01): ("user_identity", "user identity not accepted"),
}


def peer_host(address: str) -> str:
    """An IP address in one canonical form: IPv4-mapped IPv6 as IPv4, IPv6 compressed.
    Anything that is not an IP address is returned as it is."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return address.strip()
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return str(mapped or ip)


def address_allowed(rules: list[AllowedCaller], host: str) -> bool:
    """Whether some entry of the allow-list lets ``host`` in (whatever its AE title)."""
    host = peer_host(host)
    return any(not rule.hosts or host in {peer_host(h) for h in rule.hosts} for rule in rules)


def caller_allowed(rules: list[AllowedCaller], ae_title: str, address: str) -> bool:
    """Whether a calling AE title from an IP address may associate."""
    host = peer_host(address)
    for rule in rules:
        if rule.ae_title not in ("*", ae_title.strip()):
            continue
        if rule.hosts and host not in {peer_host(h) for h in rule.hosts}:
            continue
        return True
    return False


class Refusals:
    """Logs each refusal once, at WARNING, with its reason and the peer's address.

    A peer refused again for the same reason within :attr:`quiet_seconds` (an
    attack: thousands of connections) is counted instead of logged again; the
    count goes with the next line logged for that peer and reason.  Every refusal
    is counted in the metric.
    """

    quiet_seconds = 10.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], tuple[float, int]] = {}

    def forget(self) -> None:
        """Forget who was refused (the next refusal of each is logged)."""
        with self._lock:
            self._last.clear()

    def __call__(self, what: str, reason: str, why: str, peer: str, **extra: Any) -> None:
        """``what`` was refused (e.g. "connection closed", "association rejected")
        for ``reason`` (a short key) ``why`` (in words), from ``peer``."""
        metrics.REFUSED.labels(reason=reason).inc()
        now = time.monotonic()
        key = (reason, peer)
        with self._lock:
            last, quiet = self._last.get(key, (-self.quiet_seconds, 0))
            if now - last < self.quiet_seconds:
                self._last[key] = (last, quiet + 1)
                return
            if len(self._last) > 10_000:  # forget old peers, keep memory bounded
                self._last = {k: v for k, v in self._last.items()
                              if now - v[0] < self.quiet_seconds}
            self._last[key] = (now, 0)
        more = f" ({quiet} more like it since the last line)" if quiet else ""
        log.warning(
            "%s from %s: %s%s", what, peer, why, more,
            extra={"peer": peer, "reason": reason, **({"repeated": quiet} if quiet else {}),
                   **extra},
        )
        audit.association(str(extra.get("calling_ae", "")), peer, accepted=False,
                          reason=f"{what}: {why}{more}")


#: The listener's refusal log (one per process: a peer is a peer on every port).
REFUSALS = Refusals()


class AssociationGate:
    """The EVT_REQUESTED handler: lets allowed callers in until :meth:`close`."""

    def __init__(self, rules: list[AllowedCaller]) -> None:
        self.rules = rules
        self.accepting = True

    def close(self) -> None:
        """Refuse new associations (transiently); running ones finish."""
        self.accepting = False

    def on_requested(self, event: Any) -> None:
        """Reject the association unless the caller is allowed (never raises)."""
        try:
            requestor = event.assoc.requestor
            # At EVT_REQUESTED only the A-ASSOCIATE-RQ primitive holds the calling AE.
            ae_title = str(requestor.primitive.calling_ae_title).strip()
            address = peer_host(str(requestor.address))
            if self.accepting and caller_allowed(self.rules, ae_title, address):
                audit.association(ae_title, address, accepted=True)
                return
            if self.accepting:
                metrics.ASSOCIATIONS_REJECTED.inc()
                REFUSALS("association rejected", "calling_ae",
                         f"calling AE title {ae_title!r} not in allowed_callers for this address",
                         address, calling_ae=ae_title)
            else:
                REFUSALS("association rejected (transient)", "shutting_down",
                         "the service is shutting down", address, calling_ae=ae_title)
            reject = REJECT_CALLING_AE if self.accepting else REJECT_SHUTTING_DOWN
            event.assoc.acse.send_reject(*reject)
            event.assoc.is_rejected = True
            # As pynetdicom's own ACSE does after a rejection: wait until the DUL has
            # sent the A-ASSOCIATE-RJ and the peer has closed, then end the association.
            event.assoc.kill()
        except Exception:  # a handler must never raise into pynetdicom
            log.exception("error while checking an association request")


def on_rejected(event: Any) -> None:
    """EVT_REJECTED: pynetdicom rejected an association itself (the association
    limit, the called AE title); log it once, with the reason."""
    try:
        primitive = event.assoc.acceptor.primitive
        rsd = (primitive.result, primitive.result_source, primitive.diagnostic)
        reason, why = _PYNETDICOM_REJECTIONS.get(rsd, ("rejected", f"rejected {rsd}"))
        requestor = event.assoc.requestor
        REFUSALS("association rejected", reason, why, peer_host(str(requestor.address)),
                 calling_ae=str(requestor.ae_title).strip())
    except Exception:  # a handler must never raise into pynetdicom
        log.exception("error while logging a rejected association")
