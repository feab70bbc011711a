"""The first start of ``ecg-dicom serve``: listening at once, the model prepared behind.

With an empty model cache the service derives its int8 model (minutes for the shipped
YOLOv8m; seconds for the tiny model trained here, tests/tiny_model.py).  Meanwhile the
DICOM port answers C-ECHO and accepts C-STORE from dcmtk; the job waits (received,
not failed) and completes once the model is ready.  The log of that start is read as
an operator would: readable text lines, the few that say what happens, no library
output.  A second start (the model cached) shows a job's JSON lines.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from realdata import DICOM_ECG_DIR
from serve_proc import ServeProcess, run_tool
from tiny_model import IMGSZ, train_tiny_weights

pytestmark = pytest.mark.integration
#: A real cart's ECG (GE MAC55) whose header pynetdicom has nothing to warn about.
ECG = DICOM_ECG_DIR / "ge-mac55" / "ecg.dcm"

#: A text log line: local time, level, then the event.
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) +\S")
#: What the libraries print while a model is derived (ultralytics' banners, NNCF's
#: log and progress bars, OpenVINO, torch).
LIBRARY_MARKERS = ("Ultralytics", "ultralytics", "nncf", "NNCF", "OpenVINO:", "PyTorch:",
                   "━", "Statistics collection", "torch/", "Export complete", "netron")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tiny model's settings, with a model cache of the module's own (empty at first)."""
    weights = train_tiny_weights(tmp_path_factory.mktemp("tiny"))
    return {"weights": str(weights), "imgsz": IMGSZ, "runtime": "openvino-int8",
            "export_cache_dir": str(tmp_path_factory.mktemp("model-cache"))}


def send(service: ServeProcess, path: Path) -> None:
    done = run_tool("storescu", "-aet", "CART1", "-aec", "ECGDICOM", "127.0.0.1",
                    str(service.dicom_port), str(path))
    assert done.returncode == 0, done.stderr


def test_listener_opens_before_the_model_is_ready(tmp_path: Path, tiny: dict[str, Any]) -> None:
    service = ServeProcess(tmp_path, {"model": tiny, "logging": {"format": "text"}})
    service.start(wait_model=False)
    try:
        assert service.get("/healthz")["model"] == "preparing"
        echo = run_tool("echoscu", "-aec", "ECGDICOM", "127.0.0.1", str(service.dicom_port))
        assert echo.returncode == 0, echo.stderr
        send(service, ECG)
        health = service.get("/healthz")
        assert health["model"] == "preparing", "the model was ready too soon to show the wait"
        assert [j["state"] for j in service.jobs()] == ["received"]  # waits, nothing failed
        jobs = service.wait_jobs(1, timeout=600)
        assert [j["state"] for j in jobs] == ["done"], jobs
        assert service.get("/healthz")["model"] == "ready"
    finally:
        assert service.stop() == 0
    lines = service.log_path.read_text(errors="replace").splitlines()
    not_ours = [ln for ln in lines if not TEXT_LINE.match(ln)]
    assert not not_ours, not_ours  # one line per event, nothing from the libraries
    assert not [ln for ln in lines if any(m in ln for m in LIBRARY_MARKERS)]
    said = "\n".join(lines)
    assert len(re.findall(r"preparing the int8 model for this CPU \(first start only, "
                          r"(under a minute|about \d+ min)\) \.\.\.", said)) == 1, said
    assert len(re.findall(r"INFO +ready: receiving DICOM as ECGDICOM on port "
                          rf"{service.dicom_port}, web viewer at http://", said)) == 1, said
    assert len(re.findall(r"INFO +model ready \(openvino-int8 int8, \d+ s\)", said)) == 1, said
    order = [said.index(s) for s in ("ready: receiving", "preparing the int8", "model ready")]
    assert order == sorted(order), said
    # The job's lines: job id and calling AE first, the result, the seconds it took.
    job_id = jobs[0]["job_id"]
    job_lines = [ln for ln in lines if f"job {job_id} CART1:" in ln]
    assert any(" stored " in ln for ln in job_lines), said
    classified = next(ln for ln in job_lines if ": classified " in ln)
    assert re.search(r'label=("Not interpretable"|Normal|Abnormal) .*\(\d+\.\d s\)$',
                     classified), classified
    assert any(": job done: " in ln for ln in job_lines), said
    assert len(lines) <= 16, said  # the start, one job and the stop: a screenful


def test_a_jobs_json_lines_are_ours(tmp_path: Path, tiny: dict[str, Any]) -> None:
    """JSON (the default when not on a terminal): per job only our lines, no library's."""
    service = ServeProcess(tmp_path, {"model": tiny, "logging": {"format": "json"}}).start(
        timeout=600)
    try:
        send(service, ECG)
        job = service.wait_jobs(1)[0]
        time.sleep(0.5)  # the job's last line is written before its state
    finally:
        assert service.stop() == 0
    entries = [json.loads(ln) for ln in service.log_path.read_text().splitlines()]
    assert {e["logger"].split(".")[0] for e in entries} == {"ecg_dicom"}
    per_job = [e for e in entries if e.get("job_id") == job["job_id"]]
    assert [e["message"].split(":")[0] for e in per_job] == [
        "stored", "classified", "not sent", "job done"], per_job
    assert all("duration_s" in e for e in per_job)
    assert not [e for e in entries if "first start only" in e["message"]]  # cached: none


def test_text_line_names_the_job_never_the_patient() -> None:
    """The text format (in-process): head, message, short fields, duration; patient
    fields removed above DEBUG as in JSON; a library's line says whose it is."""
    import io
    import logging

    from ecg_dicom.logs import REMOVED, TextFormatter, log_context

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter())
    ours, library = logging.getLogger("ecg_dicom.worker.t"), logging.getLogger("pynetdicom.t")
    for logger in (ours, library):
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.INFO)
    try:
        with log_context(job_id="3f9c", calling_ae="CART1", sop_instance_uid="1.2.3"):
            ours.info("classified", extra={"label": "Abnormal", "class_name": "ECG HB",
                                           "confidence": 0.98076, "patient_name": "DOE^JOHN",
                                           "config": {"a": 1}, "missing": None})
        library.warning("Non-conformant value")
        ours.info("no job here")
    finally:
        for logger in (ours, library):
            logger.removeHandler(handler)
            logger.propagate = True
            logger.setLevel(logging.NOTSET)
    first, second, third = stream.getvalue().splitlines()
    assert TEXT_LINE.match(first) and TEXT_LINE.match(second) and TEXT_LINE.match(third)
    assert re.search(r'INFO    job 3f9c CART1: classified label=Abnormal class_name="ECG HB" '
                     r'confidence=0\.9808 patient_name="\[removed: patient data\]" '
                     r'\(\d\.\d s\)$', first), first
    assert REMOVED in first and "DOE" not in first and "1.2.3" not in first
    assert "config" not in first and "missing" not in first
    assert second.endswith("WARNING [pynetdicom.t] Non-conformant value")
    assert third.endswith("INFO    no job here")
