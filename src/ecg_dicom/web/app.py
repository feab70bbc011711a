"""HTTP API and the upload page (what the original Streamlit prototype was).

* ``GET /healthz`` - liveness and the algorithm version;
* ``GET /metrics`` - Prometheus metrics;
* ``GET /jobs``, ``GET /jobs/{id}``, ``POST /jobs/{id}/retry`` - the ledger;
* ``/api/*`` - the viewer's API (jobs, files, uploads, classify) and ``/docs`` with
  its assets served locally (``web/api.py``, ``web/docs.py``);
* ``GET /``, ``/job/{id}``, ``/login``, ``/static/*`` - the web viewer (``web/pages.py``).

It binds to 127.0.0.1 by default: put it behind the hospital's reverse proxy
(authentication, TLS) before opening it to other machines.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ecg_dicom.config import Settings
from ecg_dicom.jobs import JobQueue, Spool, not_retried_because, retry_failed
from ecg_dicom.pipeline import Pipeline
from ecg_dicom.web import pages, security
from ecg_dicom.web.api import api_router

#: Seconds the HTTP server gets to close its connections when the service stops.
STOP_TIMEOUT = 5.0


def create_app(settings: Settings, spool: Spool, queue: JobQueue, pipeline: Pipeline) -> FastAPI:
    """The HTTP side of a node, given the parts it serves (it imports no service)."""
    app = FastAPI(
        title="ecg-dicom",
        description="ECG AI node for PACS. AI output - not for diagnostic use.",
        docs_url=None, redoc_url=None,  # served offline by web/docs.py
    )
    security.install(app, settings.http)  # Host names, sign-in, CSRF, upload size

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        detector = pipeline.loaded_detector
        return {
            "status": "ok",
            "ae_title": settings.dicom.ae_title,
            "algorithm_version": getattr(detector, "version", None),
            # What computes the result here: model.runtime "auto" depends on the machine.
            "runtime": getattr(detector, "runtime", None),
            "precision": getattr(detector, "precision", None),
            # The SR's probability: "calibrated (platt 1a2b3c4d)" or "uncalibrated".
            "probability": getattr(detector, "probability_kind", None),
            # "preparing" while a first start derives the model (received ECGs wait).
            "model": pipeline.model_state,
            "jobs": spool.counts(),
        }

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/jobs")
    def jobs(
        state: str | None = None, limit: Annotated[int, Query(ge=1, le=1_000_000)] = 100
    ) -> list[dict[str, Any]]:
        return [j.to_dict() for j in spool.list_jobs(state, limit)]

    @app.get("/jobs/{job_id}")
    def job(job_id: str) -> dict[str, Any]:
        found = spool.get(job_id) if job_id.isalnum() else None
        if found is None:
            raise HTTPException(404, f"no job {job_id}")
        return found.to_dict()

    @app.post("/jobs/{job_id}/retry")
    def retry(job_id: str) -> dict[str, Any]:
        if not job_id.isalnum():
            raise HTTPException(404, f"no job {job_id}")
        queued = retry_failed(spool, queue, [job_id])
        # Why not, in words (e.g. its input was removed by retention).
        return {"queued": queued, **({} if queued else {"why": not_retried_because(spool, job_id)})}

    app.include_router(api_router(settings, spool, queue, pipeline))  # /api/*, /docs
    app.include_router(pages.router)  # the viewer's HTML pages and static files
    return app


class HttpServer:
    """uvicorn serving an app in a background thread, stopped by :meth:`stop`."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="http")

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Ask uvicorn to exit and wait until its thread has (at most STOP_TIMEOUT)."""
        self.server.should_exit = True
        self.thread.join(STOP_TIMEOUT)
