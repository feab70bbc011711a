"""The viewer's API on a real ``ecg-dicom serve``: an ECG sent by dcmtk ``storescu``
appears in ``/api/jobs`` with its patient, result and delivery, and its downloads
are the DICOM objects the PACS (a dcmtk ``storescp``) received.

The service runs the shipped model (``serve_proc``); a missing dcmtk tool fails.
"""

from __future__ import annotations

import json
import time
import urllib.request
from io import BytesIO
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom
import pytest

from peers import run_storescp
from realdata import DICOM_ECG_DIR, copies_with_new_uids
from serve_proc import ServeProcess, run_tool

pytestmark = pytest.mark.integration

MAC55 = DICOM_ECG_DIR / "ge-mac55" / "ecg.dcm"


def fetch(service: ServeProcess, path: str) -> tuple[dict[str, str], bytes]:
    url = f"http://127.0.0.1:{service.http_port}{path}"
    with urllib.request.urlopen(url, timeout=60) as answer:
        return dict(answer.headers), answer.read()


def api(service: ServeProcess, path: str) -> Any:
    return json.loads(fetch(service, path)[1])


def test_an_ecg_sent_by_storescu_is_listed_with_patient_result_and_downloads(
    tmp_path: Path,
) -> None:
    [ecg] = copies_with_new_uids([MAC55], tmp_path / "send", 1)
    with run_storescp(tmp_path / "pacs") as (pacs_port, _):
        service = ServeProcess(tmp_path, {"delivery": {"destinations": {"STORESCU": {
            "ae_title": "STORESCP", "host": "127.0.0.1", "port": pacs_port}}}}).start()
        try:
            sent = run_tool("storescu", "-aec", "ECGDICOM", "127.0.0.1",
                            str(service.dicom_port), str(ecg))
            assert sent.returncode == 0, sent.stderr
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                listed = api(service, "/api/jobs?q=66954")
                if listed["jobs"] and listed["jobs"][0]["state"] in ("done", "failed"):
                    break
                time.sleep(0.5)
            [row] = listed["jobs"]
            assert row["state"] == "done", (row, service.log())
            assert (row["patient_name"], row["patient_id"]) == ("66954", "66954")
            assert row["study_description"] == "DT4H" and row["study_date"] == "2006-02-01"
            assert row["calling_ae"] == "STORESCU" and row["origin"] == "dicom"
            assert row["label"] in ("Normal", "Abnormal") and 0 <= row["probability"] <= 1
            assert row["class_display"] in ("Normal", "Abnormal heartbeat", "History of MI",
                                            "Acute MI")
            assert (row["delivery"], row["destination"]) == (
                "sent", f"STORESCP@127.0.0.1:{pacs_port}")
            assert api(service, f"/api/jobs?label={row['label'].lower()}")["total"] == 1
            assert api(service, "/api/jobs?state=failed")["total"] == 0

            detail = api(service, f"/api/jobs/{row['job_id']}")
            assert detail["files"] == ["source", "sr", "sc", "annotated.png", "page.png"]
            assert detail["sr_tree"]["name"] == "Imaging Measurement Report"
            assert "ATRIAL FIBRILLATION" in detail["statements"]
            received = {pydicom.dcmread(p).SOPInstanceUID
                        for p in (tmp_path / "pacs").iterdir()}
            for name in ("source", "sr", "sc"):
                headers, body = fetch(service, f"/api/jobs/{row['job_id']}/files/{name}")
                assert headers["content-type"] == "application/dicom"
                assert row["job_id"] in headers["content-disposition"]
                ds = pydicom.dcmread(BytesIO(body))
                if name == "source":
                    assert ds.SOPInstanceUID == pydicom.dcmread(ecg).SOPInstanceUID
                else:  # what the PACS holds
                    assert ds.SOPInstanceUID in received, name
            headers, png = fetch(service, f"/api/jobs/{row['job_id']}/files/annotated.png")
            image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
            assert headers["content-type"] == "image/png" and image is not None
            headers, page = fetch(service, f"/api/jobs/{row['job_id']}/files/page.png")
            assert cv2.imdecode(np.frombuffer(page, np.uint8), cv2.IMREAD_COLOR) is not None
        finally:
            service.stop()
