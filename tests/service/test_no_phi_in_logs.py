"""No patient data in the logs at INFO, the audit trail written, the spool swept: a real serve.

Real ECGs carry a marker Patient's Name, ID, Birth Date and Accession Number; they go
through the listener (dcmtk storescu), the worker (delivered to a real storescp), a
failure (an invalid birth date), an object that is skipped, and the web upload.  The
INFO logs must never contain any marker; the audit trail must name the patient by ID
only; retention (swept every ~1 s here) must free the finished jobs' files and keep
the failed job's.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from ecg_dicom.logs import REMOVED, JsonFormatter, log_context
from peers import run_storescp
from realdata import real_ecg_paths
from serve_proc import CSRF_HEADERS, ServeProcess, run_tool

pytestmark = pytest.mark.integration

NAME = "Zqxmarkername^Wilhelmina"
BIRTH = "19230417"
PATIENT_ID = "PIDMARK4711"
ACCESSION = "ACCMARK9931"
BAD_BIRTH = "BDMARK77"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"


def marked(source: Path, target: Path, **changes: str) -> Path:
    ds = pydicom.dcmread(source)
    ds.PatientName = NAME
    ds.PatientBirthDate = BIRTH
    ds.PatientID = PATIENT_ID
    ds.AccessionNumber = ACCESSION
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.save_as(target)
    return target


def markers_in(text: str) -> list[str]:
    return [m for m in (*NAME.split("^"), BIRTH, PATIENT_ID, ACCESSION, BAD_BIRTH) if m in text]


def test_phi_fields_are_removed_above_debug() -> None:
    formatter = JsonFormatter()

    def line(level: int) -> str:
        record = logging.LogRecord("t", level, __file__, 1, "job done", None, None)
        record.patient_name = NAME
        with log_context(PatientID=PATIENT_ID, job_id="abc"):
            return formatter.format(record)

    info = line(logging.INFO)
    assert not markers_in(info) and REMOVED in info and "abc" in info
    assert NAME in line(logging.DEBUG) and PATIENT_ID in line(logging.DEBUG)


def test_serve_logs_no_patient_data_audits_and_sweeps(tmp_path: Path) -> None:
    send = tmp_path / "send"
    send.mkdir()
    ecgs = [marked(p, send / f"ecg{i}.dcm") for i, p in enumerate(real_ecg_paths())]
    bad = marked(real_ecg_paths()[1], send / "bad.dcm", PatientBirthDate=BAD_BIRTH)
    other = marked(real_ecg_paths()[1], send / "sr.dcm", SOPClassUID=BASIC_TEXT_SR)
    pacs = tmp_path / "pacs"
    with run_storescp(pacs) as (pacs_port, _):
        service = ServeProcess(tmp_path / "svc", {
            "delivery": {"destinations": {
                "STORESCU": {"ae_title": "PACS", "host": "127.0.0.1", "port": pacs_port}}},
            "storage": {"retention": {"inputs_days": 1e-6, "interval_minutes": 0.02}},
            "logging": {"level": "INFO"},
        })
        service.workdir.mkdir()
        service.start()
        try:
            sent = run_tool("storescu", "-aec", "ECGDICOM", "127.0.0.1",
                            str(service.dicom_port), *map(str, [*ecgs, bad, other]))
            assert sent.returncode == 0, sent.stderr
            status, body = service.post_file(ecgs[0])
            assert status == 200 and body["label"], body
            status, body = service.post_file(bad)
            jobs = service.wait_jobs(len(ecgs) + 2, states=("done", "failed", "skipped"))
            by_state = Counter(j["state"] for j in jobs)
            assert by_state == {"done": len(ecgs), "failed": 1, "skipped": 1}, jobs
            failed = next(j for j in jobs if j["state"] == "failed")
            assert "Birth Date" in failed["reason"] and not markers_in(failed["reason"])
            # Retention: every finished job's files go (the sweep runs every ~1 s); the
            # failed job's input stays.
            instances = service.spool_dir / "instances"
            deadline = time.monotonic() + 60
            while len(list(instances.iterdir())) > 1 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert [p.stem for p in instances.iterdir()] == [failed["job_id"]]
            assert {p.name for p in (service.spool_dir / "results").iterdir()} <= {failed["job_id"]}
            swept = {j["job_id"]: j for j in service.jobs()}
            assert all("files removed by retention" in swept[j["job_id"]]["reason"]
                       for j in jobs if j["state"] == "done")
            done = next(j["job_id"] for j in jobs if j["state"] == "done")
            request = urllib.request.Request(
                f"http://127.0.0.1:{service.http_port}/jobs/{done}/retry", method="POST",
                headers=CSRF_HEADERS)
            with urllib.request.urlopen(request, timeout=30) as rsp:
                answer = json.loads(rsp.read())
            assert answer["queued"] == [] and "input is gone" in answer["why"], answer
        finally:
            assert service.stop() == 0
    log = service.log_path.read_text(errors="replace")
    assert log.count('"message": "stored"') == len(ecgs) + 1  # the logs were captured
    assert "retention sweep: removed the files of" in log
    assert not markers_in(log), [ln for ln in log.splitlines() if markers_in(ln)][:5]

    trail = (service.workdir / "var" / "audit" / "audit.log").read_text(encoding="utf-8")
    events: Counter[tuple[str | None, str | None]] = Counter()
    for line in trail.splitlines():
        ident = ET.fromstring(line).find("EventIdentification")
        assert ident is not None
        code = ident.find("EventID")
        assert code is not None
        events[(code.get("csd-code"), ident.get("EventActionCode"))] += 1
    assert events[("110100", "E")] == 2  # start, stop
    assert events[("110104", "C")] == len(ecgs) + 2  # received: the ECGs, the bad one, the SR
    assert events[("110104", "R")] == len(ecgs)  # delivered to the PACS
    assert events[("110105", "D")] == len(ecgs)  # swept
    assert events[("110113", "E")] >= 2  # the configuration, the association(s)
    assert PATIENT_ID in trail and NAME.split("^")[0] not in trail and BIRTH not in trail
