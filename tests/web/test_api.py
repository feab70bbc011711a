"""The viewer's HTTP API in-process: the real app, spool, pipeline and worker.

The app is called through httpx's ASGI transport (``asgi_client.py``: every
middleware and route as under uvicorn, no socket).  The page reader, SR/SC
builders and ledger are the real ones; the detector is the small stand-in of the
worker's tests (the real decision rule on one chosen box), because the model's
answer is not the point here.  The service's own model runs in ``test_api_serve.py``.
"""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom
import pytest
from asgi_client import AsgiClient

from ecg_dicom.config import Settings
from ecg_dicom.jobs import Arrival, JobState, Spool
from ecg_dicom.pipeline import Pipeline
from ecg_dicom.web import create_app
from ecg_dicom.worker import Worker
from realdata import DICOM_ECG_DIR, ECG_IMAGES_DIR
from stand_ins import StandInDetector

MAC55 = DICOM_ECG_DIR / "ge-mac55" / "ecg.dcm"


class RecordingQueue:
    def __init__(self) -> None:
        self.queued: list[str] = []

    def enqueue(self, job_id: str, delay: float | None = None) -> None:
        self.queued.append(job_id)


class Node:
    """The parts ``create_app`` serves, and a client of it."""

    def __init__(self, tmp_path: Path, **http: Any) -> None:
        self.settings = Settings(
            storage={"spool_dir": tmp_path / "spool", "output_dir": tmp_path / "out",
                     "min_free_mb": 0},
            http=http,
        )
        self.spool = Spool(self.settings.storage.spool_dir, fsync=False)
        self.queue = RecordingQueue()
        self.pipeline = Pipeline(self.settings, detector=StandInDetector("MI-ECG"))  # type: ignore[arg-type]
        app = create_app(self.settings, self.spool, self.queue, self.pipeline)  # type: ignore[arg-type]
        self.client = AsgiClient(app)

    def receive(self, source: Path = MAC55, calling_ae: str = "CART") -> str:
        """What the listener records for one acknowledged instance."""
        job_id = self.spool.new_job_id()
        shutil.copyfile(source, self.spool.instance_path(job_id))
        ds = pydicom.dcmread(source, stop_before_pixels=True)
        self.spool.record_received(job_id, Arrival(
            str(ds.SOPClassUID), str(ds.SOPInstanceUID),
            study_instance_uid=str(ds.StudyInstanceUID), calling_ae=calling_ae,
            patient_name=str(ds.PatientName), patient_id=str(ds.PatientID),
            study_date=str(ds.StudyDate),
        ))
        return job_id


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


def png_shape(data: bytes) -> tuple[int, ...]:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a PNG"
    return tuple(image.shape)


def test_processed_ecg_has_its_summary_sr_tree_statements_and_downloads(node: Node) -> None:
    job_id = node.receive()
    Worker(node.settings, node.spool, node.queue, node.pipeline).run_job(  # type: ignore[arg-type]
        job_id)
    page = node.client.get("/api/jobs").json()
    [row] = page["jobs"]
    assert page["total"] == 1 and page["next"] is None
    assert row["job_id"] == job_id and row["state"] == "done" and row["origin"] == "dicom"
    assert row["patient_id"] == "66954" and row["study_date"] == "2006-02-01"
    assert row["calling_ae"] == "CART" and row["modality_name"] == "12-lead ECG waveform"
    assert (row["label"], row["class_name"], row["class_display"]) == (
        "Abnormal", "MI-ECG", "Acute MI")
    assert row["probability"] == pytest.approx(1.0)
    assert row["delivery"] == "not sent" and row["destination"] == ""

    detail = node.client.get(f"/api/jobs/{job_id}").json()
    assert detail["result"]["label"] == "Abnormal" and detail["attempts"] == 1
    assert detail["files"] == ["source", "sr", "sc", "annotated.png", "page.png"]
    assert detail["retryable"] is False
    # The cart's own interpretation, as GE MAC55 wrote it into the ECG.
    assert detail["statements"][0] == "ATRIAL FIBRILLATION"
    assert len(detail["statements"]) == 8
    tree = detail["sr_tree"]
    assert tree["name"] == "Imaging Measurement Report" and tree["children"]

    def values(node_: dict[str, Any]) -> list[str]:
        return [node_["value"], *(v for c in node_["children"] for v in values(c))]

    assert "Acute MI" in " ".join(values(tree)) or "MI-ECG" in " ".join(values(tree))

    for name, modality in (("source", "ECG"), ("sr", "SR"), ("sc", "OT")):
        got = node.client.get(f"/api/jobs/{job_id}/files/{name}")
        assert got.status_code == 200 and got.headers["content-type"] == "application/dicom"
        assert got.headers["content-disposition"].startswith("attachment; filename=")
        ds = pydicom.dcmread(io.BytesIO(got.content))
        assert ds.Modality == modality, name
    sc = pydicom.dcmread(next(node.spool.results_path(job_id).glob("SC-*.dcm")))
    annotated = node.client.get(f"/api/jobs/{job_id}/files/annotated.png")
    assert annotated.headers["content-type"] == "image/png"
    assert png_shape(annotated.content)[:2] == (sc.Rows, sc.Columns)
    rendered = node.client.get(f"/api/jobs/{job_id}/files/page.png")
    assert rendered.status_code == 200 and png_shape(rendered.content)[0] > 1000
    assert (node.spool.results_path(job_id) / "page.png").is_file()  # cached
    assert node.client.get(f"/api/jobs/{job_id}/files/../../ledger.sqlite3").status_code == 404
    assert node.client.get(f"/api/jobs/{job_id}/files/report.pdf").status_code == 404
    assert node.client.get("/api/jobs/nosuchjob").status_code == 404


def test_uploads_are_kept_as_jobs_with_results_and_errors_name_the_file(
    node: Node, tmp_path: Path
) -> None:
    jpeg = sorted((ECG_IMAGES_DIR).rglob("*.jpg"))[0]
    files = [
        ("files", ("mac55.dcm", MAC55.read_bytes(), "application/dicom")),
        ("files", ("page.jpg", jpeg.read_bytes(), "image/jpeg")),
        ("files", ("notes.txt", b"not an ECG", "text/plain")),
    ]
    answer = node.client.post("/api/uploads", files=files)
    assert answer.status_code == 200, answer.text
    dicom, picture, text = answer.json()["jobs"]
    assert [j["origin"] for j in (dicom, picture, text)] == ["upload"] * 3
    assert [j["filename"] for j in (dicom, picture, text)] == ["mac55.dcm", "page.jpg",
                                                               "notes.txt"]
    assert dicom["state"] == picture["state"] == "done"
    assert dicom["label"] == "Abnormal" and dicom["patient_id"] == "66954"
    assert picture["modality_name"] == "JPEG image" and picture["delivery"] == ""
    assert text["state"] == "failed" and "notes.txt" in text["reason"]
    assert str(tmp_path) not in text["reason"] and "/tmp" not in text["reason"]
    for job in (dicom, picture):
        kept = node.client.get(f"/api/jobs/{job['job_id']}")
        assert kept.json()["files"] == ["source", "annotated.png", "page.png"]
        assert png_shape(node.client.get(
            f"/api/jobs/{job['job_id']}/files/annotated.png").content)[2] == 3
    source = node.client.get(f"/api/jobs/{picture['job_id']}/files/source")
    assert source.headers["content-type"] == "image/jpeg"
    assert source.content == jpeg.read_bytes()
    listed = node.client.get("/api/jobs?origin=upload").json()
    assert listed["total"] == 3
    assert node.client.get("/api/jobs?q=PAGE.JPG").json()["jobs"][0]["job_id"] == picture[
        "job_id"]
    assert node.queue.queued == []  # an upload is never queued nor sent
    retried = node.client.post(f"/api/jobs/{text['job_id']}/retry").json()
    assert retried["queued"] is False and "upload the file again" in retried["why"]


def test_an_unreadable_ecg_has_no_page_and_its_error_names_no_server_path(
    node: Node, tmp_path: Path
) -> None:
    broken = pydicom.dcmread(MAC55)
    del broken.WaveformSequence
    broken.save_as(tmp_path / "broken.dcm")
    job_id = node.receive(tmp_path / "broken.dcm")
    Worker(node.settings, node.spool, node.queue, node.pipeline).run_job(  # type: ignore[arg-type]
        job_id)
    detail = node.client.get(f"/api/jobs/{job_id}").json()
    assert detail["state"] == "failed" and detail["reason"].startswith("render:")
    assert detail["files"] == ["source"] and detail["retryable"] is True
    assert detail["sr_tree"] is None and detail["label"] == ""
    page = node.client.get(f"/api/jobs/{job_id}/files/page.png")
    assert page.status_code == 422 and "Waveform" in page.json()["detail"]
    assert str(tmp_path) not in page.text


def test_retry_queues_a_failed_received_job_again(node: Node) -> None:
    job_id = node.receive()
    node.spool.update(job_id, state=JobState.FAILED,
                      reason="send: association with PACS@10.0.0.9:104 rejected (permanent)")
    row = node.client.get(f"/api/jobs/{job_id}").json()
    assert row["retryable"] is True
    assert (row["delivery"], row["destination"]) == ("failed", "PACS@10.0.0.9:104")
    assert node.client.post(f"/api/jobs/{job_id}/retry").json() == {"queued": True}
    assert node.queue.queued == [job_id]
    assert node.client.get(f"/api/jobs/{job_id}").json()["state"] == "received"
    again = node.client.post(f"/api/jobs/{job_id}/retry").json()
    assert again["queued"] is False and "only failed jobs" in again["why"]


@pytest.mark.parametrize("query", [
    "limit=0", "limit=201", "limit=-1", "limit=abc", f"limit={10**21}",
    "state=nonsense", "label=maybe", "origin=fax", "date_from=2026-02-30",
    "date_to=yesterday", "before=xyz", "before=1.5_../../etc", "updated_after=nan",
    "updated_after=-1", "q=" + "x" * 201,
])
def test_bad_list_parameters_are_422_never_500(node: Node, query: str) -> None:
    answer = node.client.get(f"/api/jobs?{query}")
    assert answer.status_code == 422, (query, answer.text)
    assert "detail" in answer.json()


def test_empty_filters_mean_any(node: Node) -> None:
    node.receive()
    answer = node.client.get("/api/jobs?state=&label=&date_from=&date_to=&q=&origin=&before=")
    assert answer.status_code == 200 and answer.json()["total"] == 1


def test_classify_leaves_out_the_image_when_asked(node: Node) -> None:
    files = {"file": ("mac55.dcm", MAC55.read_bytes(), "application/dicom")}
    full = node.client.post("/api/classify", files=files).json()
    lean = node.client.post("/api/classify?image=false", files=files).json()
    assert "annotated_png" in full and "annotated_png" not in lean
    assert lean["label"] == full["label"] == "Abnormal"
    bad = node.client.post("/api/classify", files={"file": ("scan.bin", b"\x00" * 10)})
    assert bad.status_code == 422 and "scan.bin" in bad.json()["detail"]
    assert node.client.get("/api/jobs").json()["total"] == 0  # nothing kept


def test_upload_over_the_size_limit_is_413_and_keeps_nothing(tmp_path: Path) -> None:
    small = Node(tmp_path, max_upload_mb=1)
    big = ("files", ("big.dcm", b"\x00" * (1024 * 1024 + 1), "application/dicom"))
    answer = small.client.post("/api/uploads", files=[big])
    assert answer.status_code == 413 and "max_upload_mb" in answer.text
    assert small.client.get("/api/jobs").json()["total"] == 0


def test_docs_are_served_without_any_other_site(node: Node) -> None:
    page = node.client.get("/docs")
    assert page.status_code == 200
    assert re.findall(r"https?://", page.text) == []  # nothing from another site
    assert '"/docs/assets/swagger-ui-bundle.js"' in page.text and "'/openapi.json'" in page.text
    assert 'req.headers["X-CSRF-Token"]' in page.text  # "Try it out" passes the CSRF check
    for asset, kind in (("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "css")):
        got = node.client.get(f"/docs/assets/{asset}")
        assert got.status_code == 200 and kind in got.headers["content-type"]
        assert len(got.content) > 100_000
    redoc = node.client.get("/redoc")
    assert re.findall(r"https?://", redoc.text) == []
    assert "/docs/assets/redoc.standalone.js" in redoc.text
    schema = node.client.get("/openapi.json").json()
    assert {"/api/jobs", "/api/jobs/{job_id}", "/api/uploads", "/api/classify"} <= set(
        schema["paths"])
    assert node.client.get("/docs/assets/..%2Fcore.py").status_code == 404
