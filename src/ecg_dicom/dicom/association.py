"""Who may associate with the listener, decided when the association is requested.

The calling AE title and the peer's IP address are checked against
``dicom.allowed_callers``; a stranger gets A-ASSOCIATE-RJ "calling AE title not
recognised", and while the service shuts down every request gets a transient
rejection (PS3.8 9.3.4).  What is processed is decided later, per object
(:mod:`ecg_dicom.dicom.ingest`), never by refusing an association.
"""

from __future__ import annotations

import logging
from enum import IntEnum
from typing import Any

from ecg_dicom import metrics
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


def caller_allowed(rules: list[AllowedCaller], ae_title: str, address: str) -> bool:
    """Whether a calling AE title from an IP address may associate."""
    for rule in rules:
        if rule.ae_title not in ("*", ae_title.strip()):
            continue
        if rule.hosts and address not in rule.hosts:
            continue
        return True
    return False


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
            address = str(requestor.address)
            if self.accepting and caller_allowed(self.rules, ae_title, address):
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
            reject = REJECT_CALLING_AE if self.accepting else REJECT_SHUTTING_DOWN
            event.assoc.acse.send_reject(*reject)
            event.assoc.is_rejected = True
            # As pynetdicom's own ACSE does after a rejection: wait until the DUL has
            # sent the A-ASSOCIATE-RJ and the peer has closed, then end the association.
            event.assoc.kill()
        except Exception:  # a handler must never raise into pynetdicom
            log.exception("error while checking an association request")
