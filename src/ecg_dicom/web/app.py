"""HTTP API and the upload page (what the original Streamlit prototype was).

* ``GET /healthz`` - liveness and the algorithm version;
* ``GET /metrics`` - Prometheus metrics;
* ``GET /jobs``, ``GET /jobs/{id}``, ``POST /jobs/{id}/retry`` - the ledger;
* ``POST /api/classify`` - upload a DICOM ECG, a PNG/JPEG page or a PDF and get
  Normal/Abnormal, confidences, boxes and the annotated page (PNG, base64);
* ``GET /`` - the upload page.

It binds to 127.0.0.1 by default: put it behind the hospital's reverse proxy
(authentication, TLS) before opening it to other machines.
"""

from __future__ import annotations

import base64
import logging
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import uvicorn
from fastapi import FastAPI, HTTPException, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ecg_dicom.errors import InputError, ModelError, NotInterpretableError

if TYPE_CHECKING:
    from ecg_dicom.service import Service

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
MAX_UPLOAD = 64 * 1024 * 1024


def classify_upload(service: Service, data: bytes, filename: str) -> dict[str, Any]:
    """Run render + detect on uploaded bytes; return the result and the annotated page."""
    from ecg_dicom.pages.dispatch import page_from_file
    from ecg_dicom.results.annotate import draw_result

    suffix = Path(filename).suffix.lower() or ".dcm"
    if suffix not in {".dcm", ".png", ".jpg", ".jpeg", ".pdf"}:
        suffix = ".dcm"
    with tempfile.NamedTemporaryFile(suffix=suffix) as fh:
        fh.write(data)
        fh.flush()
        try:
            page = page_from_file(Path(fh.name))
            result = service.pipeline.classify(page)
        except NotInterpretableError as exc:  # an answer, as in the service
            page, result = service.pipeline.not_interpretable(exc)
    annotated = draw_result(page, result)
    ok, png = cv2.imencode(".png", cv2.cvtColor(annotated, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("could not encode the annotated page")
    return {**result.to_dict(), "annotated_png": base64.b64encode(png.tobytes()).decode()}


def create_app(service: Service) -> FastAPI:
    app = FastAPI(
        title="ecg-dicom",
        description="ECG AI node for PACS. AI output - not for diagnostic use.",
    )

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        detector = service.pipeline._detector
        return {
            "status": "ok",
            "ae_title": service.settings.dicom.ae_title,
            "algorithm_version": getattr(detector, "version", None),
            # What computes the result here: model.runtime "auto" depends on the machine.
            "runtime": getattr(detector, "runtime", None),
            "precision": getattr(detector, "precision", None),
            "jobs": service.spool.counts(),
        }

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/jobs")
    def jobs(state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        return [j.to_dict() for j in service.spool.list_jobs(state, limit)]

    @app.get("/jobs/{job_id}")
    def job(job_id: str) -> dict[str, Any]:
        found = service.spool.get(job_id) if job_id.isalnum() else None
        if found is None:
            raise HTTPException(404, f"no job {job_id}")
        return found.to_dict()

    @app.post("/jobs/{job_id}/retry")
    def retry(job_id: str) -> dict[str, Any]:
        from ecg_dicom.jobs.retry import retry_failed

        if not job_id.isalnum():
            raise HTTPException(404, f"no job {job_id}")
        return {"queued": retry_failed(service.spool, service.queue, [job_id])}

    @app.post("/api/classify")
    async def classify(file: UploadFile) -> dict[str, Any]:
        data = await file.read(MAX_UPLOAD + 1)
        if len(data) > MAX_UPLOAD:
            raise HTTPException(413, "file larger than 64 MB")
        try:
            return await run_in_threadpool(classify_upload, service, data, file.filename or "")
        except InputError as exc:
            raise HTTPException(422, str(exc)) from exc
        except ModelError as exc:
            raise HTTPException(503, f"model unavailable: {exc}") from exc

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return (STATIC / "index.html").read_text(encoding="utf-8")

    return app


def start_http(service: Service) -> uvicorn.Server:
    """Serve the app in a background thread; returns the uvicorn server."""
    config = uvicorn.Config(
        create_app(service),
        host=service.settings.http.host,
        port=service.settings.http.port,
        log_config=None,
        access_log=False,
    )
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True, name="http").start()
    return server
