"""The audit trail: DICOM PS3.15 A.5 (IHE ATNA) audit messages, one per event.

Each message is the XML of PS3.15 A.5.1 (the DICOM form of RFC 3881:
``EventIdentification``, ``ActiveParticipant``, ``AuditSourceIdentification``,
``ParticipantObjectIdentification``; coded values as ``csd-code`` /
``codeSystemName`` / ``originalText``), written as ONE line appended to
``audit.path`` and, with ``audit.syslog: host:port``, sent as one RFC 5424 syslog
message over UDP (RFC 5426; facility 10 "security/authorization", MSGID
``IHE+RFC-3881``, as IHE ITI-20 asks).

The events and the messages they give (PS3.15 A.5.3):

* ``application_activity``: 110100 Application Activity, type 110120/110121 Start/Stop;
* ``configuration_loaded``: 110113 Security Alert, type 110131 Software Configuration
  (IHE "Actor-config"): where the settings came from and their SHA-256;
* ``association``: 110113 Security Alert, type 110126 Node Authentication: outcome 0
  (informative) when a caller is let in, 4 with the reason when it is refused;
* ``instances_received``: 110104 DICOM Instances Transferred, action C, once the
  instance is durable and acknowledged (A.5.3.6 is the *completion* of a transfer;
  110102 Begin Transferring is a sender's notice that a transfer starts, not ours);
* ``results_delivered``: 110104 DICOM Instances Transferred, action R (we are the
  source, A.5.3.6), one per destination; outcome 8 with the reason when it failed;
* ``study_deleted``: 110105 DICOM Study Deleted, action D: retention removed our
  copies of a job's instances.

Participant objects are the Study Instance UID (with its SOP classes and instance
UIDs) and the patient, identified by Patient ID only: **never a patient name**
(``ParticipantObjectName`` is not written).  The audit log therefore holds
identifiers of patients: it is not a general log. Its file is created 0600 in a
0700 folder; give it to the service account and the security officer only, ship
it to the hospital's audit record repository (syslog) and rotate it by moving it
away (the file is opened per message, so a moved file is never written again).
A failure to write it never stops the service: it is logged once per target and
counted in ``ecgdicom_audit_failures_total``.
"""

from __future__ import annotations

import contextlib
import getpass
import ipaddress
import logging
import os
import socket
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ecg_dicom import metrics
from ecg_dicom.config import Settings

log = logging.getLogger("ecg_dicom.audit")

#: RFC 5424 facility 10 (security/authorization), MSGID and APP-NAME.
SYSLOG_FACILITY, SYSLOG_MSGID, APP_NAME = 10, "IHE+RFC-3881", "ecg-dicom"

# Coded values: (csd-code, codeSystemName, originalText).
Code = tuple[str, str, str]
APPLICATION_ACTIVITY: Code = ("110100", "DCM", "Application Activity")
APPLICATION_START: Code = ("110120", "DCM", "Application Start")
APPLICATION_STOP: Code = ("110121", "DCM", "Application Stop")
INSTANCES_TRANSFERRED: Code = ("110104", "DCM", "DICOM Instances Transferred")
STUDY_DELETED: Code = ("110105", "DCM", "DICOM Study Deleted")
SECURITY_ALERT: Code = ("110113", "DCM", "Security Alert")
NODE_AUTHENTICATION: Code = ("110126", "DCM", "Node Authentication")
SOFTWARE_CONFIGURATION: Code = ("110131", "DCM", "Software Configuration")
ROLE_APPLICATION: Code = ("110150", "DCM", "Application")
ROLE_LAUNCHER: Code = ("110151", "DCM", "Application Launcher")
ROLE_DESTINATION: Code = ("110152", "DCM", "Destination Role ID")
ROLE_SOURCE: Code = ("110153", "DCM", "Source Role ID")
ID_STUDY: Code = ("110180", "DCM", "Study Instance UID")
ID_PATIENT: Code = ("2", "RFC-3881", "Patient Number")
ID_URI: Code = ("12", "RFC-3881", "URI")
ID_NODE: Code = ("110182", "DCM", "Node ID")

#: EventOutcomeIndicator (PS3.15 A.5.1).
SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE = 0, 4, 8


@dataclass(frozen=True)
class Node:
    """An active participant: an application entity at a network address."""

    ae_title: str
    address: str = ""
    requestor: bool = False
    role: Code | None = None


@dataclass(frozen=True)
class Instances:
    """The instances of one study of one patient that an event concerns."""

    study_uid: str
    instances: Sequence[tuple[str, str]] = ()  # (SOP Class UID, SOP Instance UID)
    patient_id: str = ""


def _clean(value: object) -> str:
    """XML-safe text on one line: control characters become spaces."""
    return "".join(c if c >= " " and c not in "\x7f" else " " for c in str(value))


def _coded(parent: ET.Element, tag: str, code: Code) -> None:
    ET.SubElement(parent, tag, {"csd-code": code[0], "codeSystemName": code[1],
                                "originalText": code[2]})


def _object(object_id: str, type_code: str, role: str, id_type: Code) -> ET.Element:
    """A ParticipantObjectIdentification (type 1 person / 2 system object; role 1
    patient, 3 report, 13 security resource)."""
    element = ET.Element("ParticipantObjectIdentification", {
        "ParticipantObjectID": _clean(object_id), "ParticipantObjectTypeCode": type_code,
        "ParticipantObjectTypeCodeRole": role,
    })
    _coded(element, "ParticipantObjectIDTypeCode", id_type)
    return element


class AuditTrail:
    """Where audit messages go (file, syslog) and who writes them (the source)."""

    def __init__(self, settings: Settings) -> None:
        self.path = Path(settings.audit.path) if settings.audit.path else None
        self.ae_title = settings.dicom.ae_title
        self.host = socket.gethostname()
        self.source_id = f"{self.ae_title}@{self.host}"
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        self._syslog: tuple[socket.socket, tuple[object, ...]] | None = None
        if settings.audit.syslog:
            host, _, port = settings.audit.syslog.rpartition(":")
            info = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_DGRAM)[0]
            self._syslog = (socket.socket(info[0], socket.SOCK_DGRAM), info[4])
        if self.path is not None and not self.path.parent.exists():
            with contextlib.suppress(OSError):  # reported when the first message is not written
                self.path.parent.mkdir(parents=True, mode=0o700)

    # -- the message ------------------------------------------------------------
    def message(
        self, event: Code, action: str, outcome: int, *, event_type: Code | None = None,
        participants: Iterable[Node] = (), objects: Instances | None = None,
        description: str = "", extra: Iterable[ET.Element] = (),
    ) -> str:
        root = ET.Element("AuditMessage")
        ident = ET.SubElement(root, "EventIdentification", {
            "EventActionCode": action,
            "EventDateTime": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "EventOutcomeIndicator": str(outcome),
        })
        _coded(ident, "EventID", event)
        if event_type is not None:
            _coded(ident, "EventTypeCode", event_type)
        if description:
            ET.SubElement(ident, "EventOutcomeDescription").text = _clean(description)
        for node in participants:
            attrs = {"UserID": _clean(node.ae_title),
                     "UserIsRequestor": "true" if node.requestor else "false"}
            if node.ae_title == self.ae_title and not node.address:
                attrs |= {"AlternativeUserID": str(os.getpid()),
                          "NetworkAccessPointID": self.host, "NetworkAccessPointTypeCode": "1"}
            elif node.address:
                kind = "2" if _is_ip(node.address) else "1"
                attrs |= {"NetworkAccessPointID": _clean(node.address),
                          "NetworkAccessPointTypeCode": kind}
            element = ET.SubElement(root, "ActiveParticipant", attrs)
            if node.role is not None:
                _coded(element, "RoleIDCode", node.role)
        source = ET.SubElement(root, "AuditSourceIdentification", {"AuditSourceID": self.source_id})
        # 4: application server process tier in a multi-tier system.
        ET.SubElement(source, "AuditSourceTypeCode", {"csd-code": "4"})
        if objects is not None:
            root.extend(_participant_objects(objects))
        root.extend(extra)
        return ET.tostring(root, encoding="unicode")

    # -- where it goes ----------------------------------------------------------
    def emit(self, event: str, xml: str, outcome: int) -> None:
        """Append ``xml`` as one line to the file and send it to syslog (never raises)."""
        with self._lock:
            if self.path is not None:
                try:
                    fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                    try:
                        os.write(fd, (xml + "\n").encode("utf-8"))
                    finally:
                        os.close(fd)
                except OSError as exc:
                    self._failed("file", f"audit trail not written to {self.path}: {exc}")
            if self._syslog is not None:
                sock, address = self._syslog
                try:
                    sock.sendto(self.syslog_frame(xml, outcome), address)
                except OSError as exc:
                    self._failed("syslog", f"audit message not sent to syslog: {exc}")
        metrics.AUDIT_MESSAGES.labels(event=event).inc()

    def syslog_frame(self, xml: str, outcome: int) -> bytes:
        """One RFC 5424 message: notice (5) for success, warning (4), error (3)."""
        severity = 5 if outcome == SUCCESS else 4 if outcome == MINOR_FAILURE else 3
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        head = (f"<{SYSLOG_FACILITY * 8 + severity}>1 {stamp} {self.host} {APP_NAME} "
                f"{os.getpid()} {SYSLOG_MSGID} - ")
        return head.encode("ascii", "replace") + b"\xef\xbb\xbf" + xml.encode("utf-8")

    def _failed(self, kind: str, why: str) -> None:
        metrics.AUDIT_FAILURES.labels(target=kind).inc()
        if kind not in self._warned:
            self._warned.add(kind)
            log.error(why)

    def close(self) -> None:
        if self._syslog is not None:
            self._syslog[0].close()


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
        return True
    except ValueError:
        return False


def _participant_objects(objects: Instances) -> list[ET.Element]:
    """The study (with its SOP classes and instances) and the patient (ID only)."""
    study = _object(objects.study_uid, "2", "3", ID_STUDY)
    by_class: dict[str, list[str]] = {}
    for sop_class, sop_instance in objects.instances:
        by_class.setdefault(sop_class, []).append(sop_instance)
    for sop_class, uids in by_class.items():
        element = ET.SubElement(study, "SOPClass", {"UID": _clean(sop_class),
                                                    "NumberOfInstances": str(len(uids))})
        for uid in uids:
            ET.SubElement(element, "Instance", {"UID": _clean(uid)})
    patient = [_object(objects.patient_id, "1", "1", ID_PATIENT)] if objects.patient_id else []
    return [study, *patient]


# -- the process's trail and its events ------------------------------------------
_trail: AuditTrail | None = None


def configure(settings: Settings) -> AuditTrail | None:
    """Start the process's audit trail (``audit.enabled``); the events below write to it."""
    global _trail
    shutdown()
    _trail = AuditTrail(settings) if settings.audit.enabled else None
    return _trail


def shutdown() -> None:
    """Stop writing audit messages (the events become no-ops)."""
    global _trail
    if _trail is not None:
        _trail.close()
    _trail = None


def _us(requestor: bool = False, role: Code | None = None) -> Node:
    assert _trail is not None
    return Node(_trail.ae_title, requestor=requestor, role=role)


def application_activity(started: bool) -> None:
    if _trail is None:
        return
    launcher = Node(getpass.getuser(), requestor=True, role=ROLE_LAUNCHER)
    xml = _trail.message(
        APPLICATION_ACTIVITY, "E", SUCCESS,
        event_type=APPLICATION_START if started else APPLICATION_STOP,
        participants=(_us(role=ROLE_APPLICATION), launcher),
    )
    _trail.emit("start" if started else "stop", xml, SUCCESS)


def configuration_loaded(origin: str, digest: str) -> None:
    """The effective configuration: where it came from and its SHA-256 (no values)."""
    if _trail is None:
        return
    subject = _object(origin, "2", "13", ID_URI)
    ET.SubElement(subject, "ParticipantObjectDetail", {"type": "SHA-256", "value": digest})
    xml = _trail.message(SECURITY_ALERT, "E", SUCCESS, event_type=SOFTWARE_CONFIGURATION,
                         participants=(_us(requestor=True),), extra=(subject,))
    _trail.emit("configuration", xml, SUCCESS)


def association(calling_ae: str, address: str, *, accepted: bool, reason: str = "") -> None:
    """A caller let in (informative) or refused (minor failure, with the reason)."""
    if _trail is None:
        return
    outcome = SUCCESS if accepted else MINOR_FAILURE
    caller = Node(calling_ae or "-", address, requestor=True)
    subject = _object(address or "-", "2", "13", ID_NODE)  # the alert subject
    if reason:
        ET.SubElement(subject, "ParticipantObjectDescription").text = _clean(reason)
    xml = _trail.message(SECURITY_ALERT, "E", outcome, event_type=NODE_AUTHENTICATION,
                         participants=(caller, _us()), description=reason, extra=(subject,))
    _trail.emit("association" if accepted else "association_refused", xml, outcome)


def instances_received(calling_ae: str, address: str, objects: Instances) -> None:
    """Instances acknowledged to a caller (we did not hold them: action C)."""
    if _trail is None:
        return
    xml = _trail.message(
        INSTANCES_TRANSFERRED, "C", SUCCESS,
        participants=(Node(calling_ae, address, requestor=True, role=ROLE_SOURCE),
                      _us(role=ROLE_DESTINATION)),
        objects=objects,
    )
    _trail.emit("received", xml, SUCCESS)


def results_delivered(
    destination_ae: str, address: str, objects: Instances, *, failure: str = ""
) -> None:
    """Results sent to a destination (action R: we are the source); ``failure``: why not."""
    if _trail is None:
        return
    outcome = SERIOUS_FAILURE if failure else SUCCESS
    xml = _trail.message(
        INSTANCES_TRANSFERRED, "R", outcome,
        participants=(_us(requestor=True, role=ROLE_SOURCE),
                      Node(destination_ae, address, role=ROLE_DESTINATION)),
        objects=objects, description=failure,
    )
    _trail.emit("delivered" if not failure else "delivery_failed", xml, outcome)


def study_deleted(objects: Instances, reason: str) -> None:
    """Our copies of a job's instances removed (retention)."""
    if _trail is None:
        return
    xml = _trail.message(STUDY_DELETED, "D", SUCCESS, participants=(_us(requestor=True),),
                         objects=objects, description=reason)
    _trail.emit("deleted", xml, SUCCESS)
