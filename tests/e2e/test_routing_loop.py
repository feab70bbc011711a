"""ecg-dicom behind a PACS that routes everything back to it (issue 10: "routing loop",
"send study").

Orthanc (Debian package, as a process) with the usual hospital rule, a Lua script that
forwards every instance it stores to ecg-dicom; ecg-dicom delivers its results to that
same Orthanc.  Before the ingest policy, one scanned ECG became 52 generations of SCs
in 75 s.  Now: one ECG in, and for the 60 s that follow the study holds the ECG, one SR
and one SC, never more; the SR and SC that came back are in ecg-dicom's ledger as
skipped with the reason.

And "send study": Orthanc sends a whole study (the ECG and the SR and SC it got earlier)
with ``POST /modalities/ecgdicom/store``: the association is accepted, every C-STORE
succeeds (HTTP 200), only the ECG is processed, the SR and SC are skipped.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pydicom
import pytest

from orthanc import Orthanc, run_orthanc
from peers import free_port
from realdata import DICOM_ECG_DIR
from serve_proc import ServeProcess

pytestmark = pytest.mark.e2e

#: The forward-everything rule many hospitals run (Orthanc Book, "Auto-routing").
FORWARD_EVERYTHING = """
function OnStoredInstance(instanceId, tags, metadata, origin)
  SendToModality(instanceId, 'ecgdicom')
end
"""
#: How long the study is watched after the ECG arrives.
WATCH_SECONDS = 60.0
SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
SR_STORAGE = {"1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.88.33",
              "1.2.840.10008.5.1.4.1.1.88.34"}
ECG = DICOM_ECG_DIR / "ge-mac55" / "ecg.dcm"


def _service(workdir: Path, orthanc: Orthanc, dicom_port: int) -> ServeProcess:
    config = {"delivery": {"destinations": {
        "ORTHANC": {"ae_title": "ORTHANC", "host": "127.0.0.1", "port": orthanc.dicom_port}}}}
    service = ServeProcess(workdir, config, dicom_port, free_port())
    service.workdir.mkdir()
    return service.start()


def _classes(orthanc: Orthanc, study_uid: str) -> list[str]:
    return sorted(i["SOPClassUID"] for i in orthanc.instances_of_study(study_uid))


def _check_returned_results(jobs: list[dict[str, Any]]) -> None:
    """The SR and SC that came back are skipped, with a reason a person understands."""
    for job in jobs:
        if job["sop_class_uid"] in SR_STORAGE:
            assert job["state"] == "skipped", job
            assert job["reason"].endswith("SR Storage is not an ECG input"), job
        elif job["sop_class_uid"] == SC_STORAGE:
            assert job["state"] == "skipped", job
            assert job["reason"].startswith("skipped: an ecg-dicom result"), job


def test_forward_everything_rule_does_not_loop(tmp_path: Path) -> None:
    study_uid = str(pydicom.dcmread(ECG, stop_before_pixels=True).StudyInstanceUID)
    serve_port = free_port()
    with run_orthanc(tmp_path / "orthanc", {"ecgdicom": ["ECGDICOM", "127.0.0.1", serve_port]},
                     lua=FORWARD_EVERYTHING) as orthanc:
        service = _service(tmp_path / "svc", orthanc, serve_port)
        try:
            orthanc.upload(ECG)  # the Lua rule sends it on
            deadline = time.monotonic() + WATCH_SECONDS
            seen = 0
            while time.monotonic() < deadline:
                seen = max(seen, len(_classes(orthanc, study_uid)))
                assert seen <= 3, _classes(orthanc, study_uid)  # a loop shows at once
                time.sleep(1.0)
            classes = _classes(orthanc, study_uid)
            jobs = service.jobs()
        finally:
            assert service.stop() == 0
    assert len(classes) == 3, classes
    assert classes.count(SC_STORAGE) == 1 and len(set(classes) & SR_STORAGE) == 1, classes
    assert sorted(j["state"] for j in jobs) == ["done", "skipped", "skipped"], jobs
    [done] = [j for j in jobs if j["state"] == "done"]
    assert done["sop_class_uid"] == "1.2.840.10008.5.1.4.1.1.9.1.1"
    assert {j["calling_ae"] for j in jobs} == {"ORTHANC"}
    _check_returned_results(jobs)


def test_send_study_with_earlier_results_processes_only_the_ecg(tmp_path: Path) -> None:
    study_uid = str(pydicom.dcmread(ECG, stop_before_pixels=True).StudyInstanceUID)
    serve_port = free_port()
    with run_orthanc(tmp_path / "orthanc",
                     {"ecgdicom": ["ECGDICOM", "127.0.0.1", serve_port]}) as orthanc:
        service = _service(tmp_path / "svc", orthanc, serve_port)
        try:
            # Earlier: the ECG was sent on its own; its SR and SC are in the study.
            orthanc.send_to("ecgdicom", orthanc.upload(ECG))
            service.wait_jobs(1)
            assert len(_classes(orthanc, study_uid)) == 3
            # Now the whole study is sent (Synchronous: HTTP 200 only if every C-STORE
            # succeeded; before the policy the association itself failed and Orthanc
            # answered HTTP 500).
            [study_id] = orthanc.rest("POST", "/tools/find",
                                      {"Level": "Study", "Query": {"StudyInstanceUID": study_uid}})
            orthanc.rest("POST", "/modalities/ecgdicom/store",
                          {"Resources": [study_id], "Synchronous": True})
            jobs = service.wait_jobs(4, states=("done", "failed", "skipped"), timeout=120)
            classes = _classes(orthanc, study_uid)
        finally:
            assert service.stop() == 0
    assert sorted(j["state"] for j in jobs) == ["done", "done", "skipped", "skipped"], jobs
    assert all(j["sop_class_uid"] == "1.2.840.10008.5.1.4.1.1.9.1.1"
               for j in jobs if j["state"] == "done")
    _check_returned_results(jobs)
    # Processing the same ECG again gave the same results (same UIDs): still 3 objects.
    assert len(classes) == 3, classes
