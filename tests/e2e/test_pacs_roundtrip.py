"""The whole path: PACS -> ecg-dicom -> PACS, with real peers on loopback.

* Orthanc (Debian package, run as a process) sends each real ECG to ecg-dicom
  through its REST API; the SR and SC must appear in the same study in Orthanc.
* The same with dcmtk ``storescu`` as the sender and ``storescp`` as the PACS.
* PACS down -> results arrive once it is back; PACS refusing -> no retry storm,
  the job is failed with the reason; ``jobs retry`` then delivers it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest

from orthanc import run_orthanc
from peers import free_port, run_storescp
from serve_proc import ServeProcess, run_tool

pytestmark = pytest.mark.e2e

SR_STORAGE = {"1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.88.34"}
SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7"


def test_orthanc_sends_every_real_ecg_and_gets_sr_and_sc_in_the_same_study(
    tmp_path: Path, real_ecgs: list[Path]
) -> None:
    serve_port = free_port()
    with run_orthanc(tmp_path / "orthanc",
                     {"ecgdicom": ["ECGDICOM", "127.0.0.1", serve_port]}) as orthanc:
        config = {"delivery": {"destinations": {
            "ORTHANC": {"ae_title": "ORTHANC", "host": "127.0.0.1", "port": orthanc.dicom_port}}}}
        service = ServeProcess(tmp_path / "svc", config, serve_port, free_port())
        service.workdir.mkdir()
        service.start()
        try:
            for path in real_ecgs:
                orthanc.send_to("ecgdicom", orthanc.upload(path))
            jobs = service.wait_jobs(len(real_ecgs))
            assert {j["state"] for j in jobs} == {"done"}, jobs
            assert all(j["calling_ae"] == "ORTHANC" for j in jobs)
            for path in real_ecgs:
                source = pydicom.dcmread(path, stop_before_pixels=True)
                study = orthanc.instances_of_study(str(source.StudyInstanceUID))
                classes = sorted(i["SOPClassUID"] for i in study)
                assert len(study) == 3, classes  # the ECG, its SC and its SR
                [sr] = [i for i in study if i["SOPClassUID"] in SR_STORAGE]
                [sc] = [i for i in study if i["SOPClassUID"] == SC_STORAGE]
                assert sr["PatientID"] == sc["PatientID"] == str(source.PatientID)
                assert sr["VerificationFlag"] == "UNVERIFIED"
                assert sc["BurnedInAnnotation"] == "YES"
                assert "AI" in sc["SeriesDescription"]
                assert sr["SeriesInstanceUID"] != sc["SeriesInstanceUID"]
                assert str(source.SeriesInstanceUID) not in (sr["SeriesInstanceUID"],
                                                             sc["SeriesInstanceUID"])
        finally:
            assert service.stop() == 0


def test_storescu_to_ecg_dicom_to_storescp(tmp_path: Path, real_ecgs: list[Path]) -> None:
    with run_storescp(tmp_path / "pacs") as (pacs_port, _):
        config = {"delivery": {"destinations": {
            "CART": {"ae_title": "STORESCP", "host": "127.0.0.1", "port": pacs_port}}}}
        service = ServeProcess(tmp_path / "svc", config)
        service.workdir.mkdir()
        service.start()
        try:
            sent = run_tool("storescu", "-aet", "CART", "-aec", "ECGDICOM", "127.0.0.1",
                            str(service.dicom_port), *map(str, real_ecgs))
            assert sent.returncode == 0, sent.stderr
            jobs = service.wait_jobs(len(real_ecgs))
        finally:
            service.stop()
        assert {j["state"] for j in jobs} == {"done"}, jobs
        received = [pydicom.dcmread(p) for p in (tmp_path / "pacs").iterdir()]
        assert len(received) == 2 * len(real_ecgs)
        studies = {str(pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID)
                   for p in real_ecgs}
        assert {str(d.StudyInstanceUID) for d in received} == studies
        sr_dump = run_tool("dsrdump", str(next(p for p in (tmp_path / "pacs").iterdir()
                                              if p.name.startswith("SR"))))
        assert sr_dump.returncode == 0 and "Imaging Measurement Report" in sr_dump.stdout


def _delivery_config(port: int) -> dict[str, dict[str, object]]:
    return {"delivery": {
        "destinations": {"CART": {"ae_title": "STORESCP", "host": "127.0.0.1", "port": port}},
        "backoff_initial": 0.5, "backoff_max": 2.0, "max_attempts": 30, "timeout": 5.0}}


def _wait(service: ServeProcess, predicate, timeout: float = 120.0) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = service.jobs()
        if jobs and predicate(jobs[0]):
            return jobs[0]
        time.sleep(0.2)
    raise TimeoutError(f"{service.jobs()}\n{service.log()}")


def test_pacs_down_then_back_results_arrive(tmp_path: Path, real_ecgs: list[Path]) -> None:
    pacs_port = free_port()  # nothing listens there yet
    service = ServeProcess(tmp_path / "svc", _delivery_config(pacs_port))
    service.workdir.mkdir()
    service.start()
    try:
        sent = run_tool("storescu", "-aet", "CART", "-aec", "ECGDICOM", "127.0.0.1",
                        str(service.dicom_port), str(real_ecgs[0]))
        assert sent.returncode == 0
        job = _wait(service, lambda j: j["delivery_attempts"] >= 2)
        assert job["state"] == "waiting" and "next try" in job["reason"]
        assert job["reason"].startswith("waiting for destination: send attempt")
        with run_storescp(tmp_path / "pacs", port=pacs_port):
            job = _wait(service, lambda j: j["state"] == "done")
        assert "sent to STORESCP" in job["reason"]
        assert len(list((tmp_path / "pacs").iterdir())) == 2
    finally:
        service.stop()


def test_pacs_refusing_fails_once_without_retry_storm_then_retry_delivers(
    tmp_path: Path, real_ecgs: list[Path]
) -> None:
    pacs_port = free_port()
    config = _delivery_config(pacs_port)
    service = ServeProcess(tmp_path / "svc", config)
    service.workdir.mkdir()
    service.start()
    try:
        with run_storescp(tmp_path / "refusing", "--refuse", port=pacs_port):
            sent = run_tool("storescu", "-aet", "CART", "-aec", "ECGDICOM", "127.0.0.1",
                            str(service.dicom_port), str(real_ecgs[1]))
            assert sent.returncode == 0
            job = _wait(service, lambda j: j["state"] == "failed")
            assert "permanent" in job["reason"] and "reject" in job["reason"].lower()
            assert job["delivery_attempts"] == 1
        # The PACS is fixed; the operator re-sends the failed job from the CLI.
        with run_storescp(tmp_path / "pacs", port=pacs_port):
            retry = subprocess.run(
                [sys.executable, "-m", "ecg_dicom", "jobs", "retry"],
                env={"ECG_DICOM_CONFIG": str(service.workdir / "site.yaml"), "PATH": "/usr/bin"},
                cwd=service.workdir, capture_output=True, text=True, timeout=60, check=False,
            )
            assert retry.returncode == 0 and "queued again: 1" in retry.stdout, retry.stderr
            job = _wait(service, lambda j: j["state"] == "done")
        assert len(list((tmp_path / "pacs").iterdir())) == 2
    finally:
        service.stop()


def test_results_by_dicomweb_stow_rs_into_orthanc(tmp_path: Path, real_ecgs: list[Path]) -> None:
    """Delivery by STOW-RS only (Orthanc's DICOMweb plugin), no DIMSE destination."""
    with run_orthanc(tmp_path / "orthanc", {}, dicomweb=True) as orthanc:
        config = {"delivery": {"stow_url": f"http://127.0.0.1:{orthanc.http_port}/dicom-web"}}
        service = ServeProcess(tmp_path / "svc", config)
        service.workdir.mkdir()
        service.start()
        try:
            sent = run_tool("storescu", "-aec", "ECGDICOM", "127.0.0.1",
                            str(service.dicom_port), str(real_ecgs[0]))
            assert sent.returncode == 0, sent.stderr
            [job] = service.wait_jobs(1)
        finally:
            service.stop()
        assert job["state"] == "done" and "STOW-RS" in job["reason"], job
        study = pydicom.dcmread(real_ecgs[0], stop_before_pixels=True).StudyInstanceUID
        classes = sorted(i["SOPClassUID"] for i in orthanc.instances_of_study(str(study)))
        assert len(classes) == 2 and SC_STORAGE in classes
        assert set(classes) - {SC_STORAGE} <= SR_STORAGE
