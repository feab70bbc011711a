"""The README's Orthanc auto-routing script (``docs/orthanc-routing.lua``), as shipped,
in a real Orthanc with a real ``ecg-dicom serve``.

A cart sends a 12-lead ECG and a scanner a Secondary Capture of a printed ECG to
Orthanc with ``storescu``; the script routes each to ecg-dicom, whose SR and SC come
back into the same study exactly once.  The script routes nothing else: ecg-dicom's
ledger holds exactly the two inputs (had Orthanc forwarded a result, ecg-dicom
would have recorded it as skipped), and the studies hold input + SR + SC, no more,
while they are watched.  An ecg-dicom SC that reaches Orthanc again from another
AE title (a copy, a study import through the REST API) is not routed either.
"""

from __future__ import annotations

import time
from pathlib import Path

import pydicom
import pytest

from orthanc import Orthanc, run_orthanc
from peers import free_port
from realdata import DICOM_ECG_DIR, ROOT
from serve_proc import ServeProcess, run_tool
from variants import secondary_capture, training_page

pytestmark = pytest.mark.e2e

SCRIPT = ROOT / "docs" / "orthanc-routing.lua"
ECG = DICOM_ECG_DIR / "ge-mac55" / "ecg.dcm"
ECG_12_LEAD = "1.2.840.10008.5.1.4.1.1.9.1.1"
SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
#: Seconds the studies are watched after the results came back (a loop shows at once).
WATCH_SECONDS = 15.0


def store(orthanc: Orthanc, path: Path, calling_ae: str) -> None:
    sent = run_tool("storescu", "-aet", calling_ae, "-aec", orthanc.aet, "127.0.0.1",
                    str(orthanc.dicom_port), str(path))
    assert sent.returncode == 0, sent.stderr


def classes(orthanc: Orthanc, study_uid: str) -> list[tuple[str, str]]:
    """(SOP Class UID, Series Number) of every instance of a study in Orthanc."""
    return sorted((i["SOPClassUID"], str(i.get("SeriesNumber", "")))
                  for i in orthanc.instances_of_study(study_uid))


def test_lua_script_routes_ecgs_once_and_never_results(tmp_path: Path) -> None:
    scan = tmp_path / "scan.dcm"
    secondary_capture(training_page(0), PatientName="Scan^Test", PatientID="S1").save_as(
        scan, enforce_file_format=True)
    studies = {str(pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID): p
               for p in (ECG, scan)}
    serve_port = free_port()
    with run_orthanc(tmp_path / "orthanc", {"ecgdicom": ["ECGDICOM", "127.0.0.1", serve_port]},
                     lua=SCRIPT.read_text(encoding="utf-8")) as orthanc:
        service = ServeProcess(tmp_path / "svc", {"delivery": {"destinations": {"ORTHANC": {
            "ae_title": "ORTHANC", "host": "127.0.0.1", "port": orthanc.dicom_port}}}},
            serve_port, free_port())
        service.workdir.mkdir()
        service.start()
        try:
            store(orthanc, ECG, "CART")
            store(orthanc, scan, "SCANNER")
            jobs = service.wait_jobs(2, states=("done", "failed", "skipped"), timeout=300)
            deadline = time.monotonic() + 120
            while any(len(classes(orthanc, s)) < 3 for s in studies):
                assert time.monotonic() < deadline, {s: classes(orthanc, s) for s in studies}
                time.sleep(0.5)
            watch_until = time.monotonic() + WATCH_SECONDS
            while time.monotonic() < watch_until:
                for study in studies:
                    assert len(classes(orthanc, study)) == 3, classes(orthanc, study)
                time.sleep(1.0)
            # Our SC arrives again, not from ecg-dicom: it is still not routed.
            ecg_study = next(s for s, p in studies.items() if p == ECG)
            [our_sc] = [i for i in orthanc.instances_of_study(ecg_study)
                        if i["SOPClassUID"] == SC_STORAGE]
            copy = tmp_path / "our-sc.dcm"
            copy.write_bytes(orthanc.rest("GET", f"/instances/{our_sc['ID']}/file"))
            orthanc.rest("DELETE", f"/instances/{our_sc['ID']}")
            orthanc.upload(copy)  # REST: no calling AE title to tell it by
            time.sleep(5.0)
            final = {s: classes(orthanc, s) for s in studies}
            jobs = service.jobs()
        finally:
            assert service.stop() == 0
    # ecg-dicom saw exactly the two inputs, each from Orthanc, each done.
    assert sorted((j["sop_class_uid"], j["state"]) for j in jobs) == [
        (SC_STORAGE, "done"), (ECG_12_LEAD, "done")], jobs
    assert {j["calling_ae"] for j in jobs} == {"ORTHANC"}
    # Each study: the input, one SR (series 9902) and one SC (series 9901).
    for study, source in studies.items():
        found = final[study]
        assert len(found) == 3, found
        assert sum(series == "9902" for _, series in found) == 1, found
        assert sum(series == "9901" and cls == SC_STORAGE for cls, series in found) == 1, found
        assert sum(series not in ("9901", "9902") for _, series in found) == 1, (source, found)
