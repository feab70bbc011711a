"""The audit trail: PS3.15 A.5 messages in a file (one per line) and over syslog (UDP)."""

from __future__ import annotations

import logging
import re
import socket
import stat
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecg_dicom import audit
from ecg_dicom.config import Settings
from peers import LOOPBACK

STUDY = "1.2.826.0.1.3680043.8.498.1"
SOP_CLASS = "1.2.840.10008.5.1.4.1.1.9.1.2"
#: RFC 5424: <PRI>VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG
SYSLOG_HEADER = re.compile(
    rb"<(\d+)>1 (\S+Z) (\S+) ecg-dicom (\d+) IHE\+RFC-3881 - \xef\xbb\xbf(<AuditMessage>.*)$", re.S
)


def settings_for(path: Path, syslog: str = "") -> Settings:
    return Settings(audit={"enabled": True, "path": str(path), "syslog": syslog},
                    dicom={"ae_title": "ECGAI"})


@pytest.fixture
def trail_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "audit" / "audit.log"
    audit.configure(settings_for(path))
    yield path
    audit.shutdown()


def messages(path: Path) -> list[ET.Element]:
    return [ET.fromstring(line) for line in path.read_text(encoding="utf-8").splitlines()]


def event_id(message: ET.Element) -> tuple[str, str, str]:
    ident = message.find("EventIdentification")
    assert ident is not None
    code = ident.find("EventID")
    assert code is not None
    return (code.get("csd-code", ""), ident.get("EventActionCode", ""),
            ident.get("EventOutcomeIndicator", ""))


def objects_of(message: ET.Element) -> dict[str, ET.Element]:
    """Participant objects by their ID type code (110180 study, 2 patient, ...)."""
    found = {}
    for element in message.findall("ParticipantObjectIdentification"):
        code = element.find("ParticipantObjectIDTypeCode")
        assert code is not None
        found[code.get("csd-code", "")] = element
    return found


def test_every_event_is_one_line_of_ps3_15_xml_in_a_private_file(trail_file: Path) -> None:
    received = audit.Instances(STUDY, [(SOP_CLASS, "1.2.3.4")], patient_id="PID-0001")
    results = audit.Instances(STUDY, [("1.2.840.10008.5.1.4.1.1.7", "1.2.3.5"),
                                      ("1.2.840.10008.5.1.4.1.1.88.22", "1.2.3.6")], "PID-0001")
    audit.application_activity(started=True)
    audit.configuration_loaded("/etc/ecg-dicom/site.yaml", "c2hhMjU2")
    audit.association("CART", "192.0.2.7", accepted=True)
    audit.association("EVIL", "192.0.2.66", accepted=False, reason="not in allowed_callers")
    audit.instances_received("CART", "192.0.2.7", received)
    audit.results_delivered("PACS", "pacs.example:104", results)
    audit.results_delivered("PACS", "pacs.example:104", results, failure="0xA700 out of space")
    audit.study_deleted(received, "retention: inputs older than 30 days")
    audit.application_activity(started=False)

    assert stat.S_IMODE(trail_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(trail_file.parent.stat().st_mode) == 0o700
    got = messages(trail_file)
    assert [event_id(m) for m in got] == [
        ("110100", "E", "0"), ("110113", "E", "0"), ("110113", "E", "0"), ("110113", "E", "4"),
        ("110104", "C", "0"), ("110104", "R", "0"), ("110104", "R", "8"), ("110105", "D", "0"),
        ("110100", "E", "0"),
    ]
    for message in got:  # the parts every message has (PS3.15 A.5.1)
        assert message.find("AuditSourceIdentification") is not None
        assert message.findall("ActiveParticipant")
        assert message.find("EventIdentification").get("EventDateTime")  # type: ignore[union-attr]
    types = [m.find("EventIdentification/EventTypeCode") for m in got]
    assert [t.get("csd-code") if t is not None else None for t in types] == [
        "110120", "110131", "110126", "110126", None, None, None, None, "110121"]

    refused = got[3]
    assert "not in allowed_callers" in ET.tostring(refused, encoding="unicode")
    caller = refused.find("ActiveParticipant")
    assert caller is not None and caller.get("UserID") == "EVIL"
    assert caller.get("NetworkAccessPointID") == "192.0.2.66"
    assert caller.get("NetworkAccessPointTypeCode") == "2"

    transfer = got[4]
    roles = {p.get("UserID"): (p.find("RoleIDCode").get("csd-code"),  # type: ignore[union-attr]
                               p.get("UserIsRequestor")) for p in transfer.findall(
                                   "ActiveParticipant")}
    assert roles == {"CART": ("110153", "true"), "ECGAI": ("110152", "false")}
    objs = objects_of(transfer)
    assert objs["110180"].get("ParticipantObjectID") == STUDY
    sop = objs["110180"].find("SOPClass")
    assert sop is not None and sop.get("UID") == SOP_CLASS and sop.get("NumberOfInstances") == "1"
    assert [i.get("UID") for i in sop.findall("Instance")] == ["1.2.3.4"]
    assert objs["2"].get("ParticipantObjectID") == "PID-0001"
    assert objs["2"].get("ParticipantObjectTypeCodeRole") == "1"
    assert objs["2"].find("ParticipantObjectName") is None  # never a name

    delivered = objects_of(got[5])["110180"].findall("SOPClass")
    assert sorted(s.get("NumberOfInstances", "") for s in delivered) == ["1", "1"]


def test_hostile_values_stay_on_one_line_and_parse(trail_file: Path) -> None:
    audit.instances_received(
        'AE"<&', "10.0.0.1", audit.Instances(STUDY + "\n<x>", [], patient_id="A&B<C>\"\n\x00Z")
    )
    lines = trail_file.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    objs = objects_of(ET.fromstring(lines[0]))
    assert objs["2"].get("ParticipantObjectID") == 'A&B<C>"  Z'
    assert objs["110180"].get("ParticipantObjectID") == STUDY + " <x>"


def test_syslog_gets_rfc5424_over_udp(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind((LOOPBACK, 0))
        receiver.settimeout(10)
        port = receiver.getsockname()[1]
        audit.configure(settings_for(tmp_path / "audit.log", syslog=f"{LOOPBACK}:{port}"))
        try:
            audit.association("EVIL", "192.0.2.66", accepted=False, reason="calling AE")
            audit.application_activity(started=True)
            frames = [receiver.recv(65535), receiver.recv(65535)]
        finally:
            audit.shutdown()
    parsed = [SYSLOG_HEADER.match(f) for f in frames]
    assert all(parsed), frames
    # PRI = facility 10 x 8 + severity: warning (4) for a refusal, notice (5) for a start.
    assert [int(m.group(1)) for m in parsed if m] == [84, 85]
    file_lines = (tmp_path / "audit.log").read_text(encoding="utf-8").splitlines()
    assert [m.group(5).decode() for m in parsed if m] == file_lines


def test_an_unwritable_trail_is_logged_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the audit folder should be")
    audit.configure(settings_for(blocked / "audit.log"))
    try:
        with caplog.at_level(logging.ERROR, logger="ecg_dicom.audit"):
            audit.application_activity(started=True)
            audit.application_activity(started=False)
    finally:
        audit.shutdown()
    assert len([r for r in caplog.records if "audit trail not written" in r.message]) == 1


def test_disabled_or_unconfigured_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    settings = Settings(audit={"enabled": False, "path": str(path)})
    assert audit.configure(settings) is None
    audit.application_activity(started=True)
    audit.shutdown()
    audit.application_activity(started=True)
    assert not path.exists()
