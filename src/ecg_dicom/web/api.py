"""The HTTP API of the viewer: jobs, their files, retry, uploads, classify.

* ``GET /api/jobs`` - one page of jobs, newest received first, filtered by
  ``state``, ``label`` (normal, abnormal, not-interpretable, none), received date
  (``date_from``/``date_to``, YYYY-MM-DD, the service's local days), ``q`` (patient
  name or ID, calling AE, job id, Study Instance UID, file name; case-insensitive),
  ``origin`` (dicom, upload) and ``updated_after`` (epoch seconds: live updates);
  ``limit`` 1..200 (default 50), ``before`` the ``next`` cursor of the previous page.
  Answers ``{"jobs": [...], "next": cursor or null, "total": n}``; a parameter out
  of range is HTTP 422 with what is wrong;
* ``GET /api/jobs/{id}`` - one job: the summary, the full result, attempts, the
  kept SR as a tree, the cart's own statements, the files it has, retryable;
* ``GET /api/jobs/{id}/files/{name}`` - source, sr, sc (DICOM downloads),
  annotated.png, page.png (see :mod:`ecg_dicom.web.files`);
* ``POST /api/jobs/{id}/retry`` - queue a failed job again: ``{"queued": bool, "why"?}``;
* ``POST /api/uploads`` - one or many files (multipart field ``files``), each kept
  and classified: ``{"jobs": [...]}`` (see :mod:`ecg_dicom.web.uploads`);
* ``POST /api/classify`` - one file (field ``file``) classified, nothing kept;
  ``?image=false`` leaves out the annotated page (about 4 MB of base64).

Uploads are limited to ``http.max_upload_mb`` per request (HTTP 413), checked from
Content-Length before the body is read (a request without one: HTTP 411).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from starlette.datastructures import FormData, UploadFile

from ecg_dicom.config import Settings
from ecg_dicom.errors import InputError, ModelError
from ecg_dicom.jobs import (
    Job,
    JobQuery,
    JobQueue,
    JobState,
    Spool,
    not_retried_because,
    retry_failed,
)
from ecg_dicom.pipeline import Pipeline
from ecg_dicom.sop import WAVEFORM_SOP_CLASSES
from ecg_dicom.web import files, jobs_view
from ecg_dicom.web.docs import docs_router
from ecg_dicom.web.uploads import classify_bytes, keep_upload

_MULTIPART = {"requestBody": {"required": True, "content": {"multipart/form-data": {
    "schema": {"type": "object", "required": ["files"], "properties": {
        "files": {"type": "array", "items": {"type": "string", "format": "binary"}}}}}}}}
_ONE_FILE = {"requestBody": {"required": True, "content": {"multipart/form-data": {
    "schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary"}}}}}}}
_STATES = {s.value for s in JobState}


def _optional(value: str | None) -> str | None:
    """A query parameter, None when absent or empty (``?state=`` means any)."""
    return value.strip() if value and value.strip() else None


def _bad(message: str) -> HTTPException:
    return HTTPException(422, message)


def job_query(state: str | None, label: str | None, date_from: str | None,
              date_to: str | None, q: str, origin: str | None, before: str | None,
              limit: int, updated_after: float | None) -> JobQuery:
    """The query parameters of ``/api/jobs`` as a :class:`JobQuery` (422 when wrong)."""
    state, label, origin = _optional(state), _optional(label), _optional(origin)
    if state is not None and state not in _STATES:
        raise _bad(f"state must be one of {', '.join(sorted(_STATES))}")
    if label is not None and label not in jobs_view.LABEL_FILTERS:
        raise _bad(f"label must be one of {', '.join(jobs_view.LABEL_FILTERS)}")
    if origin is not None and origin not in ("dicom", "upload"):
        raise _bad("origin must be dicom or upload")
    days: list[float | None] = []
    for name, value, after in (("date_from", date_from, False), ("date_to", date_to, True)):
        text = _optional(value)
        try:
            days.append(None if text is None else jobs_view.day_start(text, after=after))
        except (ValueError, OverflowError, OSError):
            raise _bad(f"{name} must be a date as YYYY-MM-DD") from None
    cursor = _optional(before)
    try:
        start = None if cursor is None else jobs_view.parse_cursor(cursor)
    except ValueError:
        raise _bad("before must be the 'next' cursor of an earlier page") from None
    return JobQuery(
        state=state, label=None if label is None else jobs_view.LABEL_FILTERS[label],
        received_from=days[0], received_to=days[1], text=q, origin=origin,
        updated_after=updated_after, before=start, limit=limit,
    )


async def _read_form(request: Request, settings: Settings) -> FormData:
    """The multipart form of an upload, its size checked before reading (the caller
    closes it: its files are spooled to temporary files)."""
    limit = settings.http.max_upload_mb * 1024 * 1024
    length = request.headers.get("content-length")
    if length is None:
        raise HTTPException(411, "an upload needs a Content-Length")
    if not length.isdigit() or int(length) > limit:
        raise HTTPException(
            413, f"upload larger than http.max_upload_mb ({settings.http.max_upload_mb} MB)")
    try:
        return await request.form()
    except Exception as exc:  # not multipart, or a broken body
        raise HTTPException(422, f"not a multipart upload: {exc}") from None


def _files(form: FormData, field: str) -> list[UploadFile]:
    found = [f for f in form.getlist(field) if isinstance(f, UploadFile)]
    if not found:
        raise HTTPException(422, f"no file in the form field {field!r}")
    return found


def api_router(settings: Settings, spool: Spool, queue: JobQueue, pipeline: Pipeline
               ) -> APIRouter:
    """The routes of this module (and ``/docs``: :mod:`ecg_dicom.web.docs`), given the
    parts they serve."""
    router = APIRouter(prefix="/api", tags=["viewer API"])

    def find(job_id: str) -> Job:
        job = spool.get(job_id) if job_id.isalnum() and len(job_id) <= 64 else None
        if job is None:
            raise HTTPException(404, f"no job {job_id}")
        return job

    def summary(job: Job) -> dict[str, Any]:
        return jobs_view.summary(job, settings)

    @router.get("/jobs")
    def list_jobs(
        state: str | None = None, label: str | None = None,
        date_from: str | None = None, date_to: str | None = None,
        q: Annotated[str, Query(max_length=200)] = "",
        origin: str | None = None,
        before: Annotated[str | None, Query(max_length=100)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        updated_after: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
    ) -> dict[str, Any]:
        """Jobs, newest received first, a keyset page at a time (see the module)."""
        query = job_query(state, label, date_from, date_to, q, origin, before, limit,
                          updated_after)
        jobs, after, total = spool.page(query)
        return {"jobs": [summary(j) for j in jobs], "next": jobs_view.cursor(after),
                "total": total}

    @router.get("/jobs/{job_id}")
    def job_detail(job_id: str) -> dict[str, Any]:
        """One job with its result, SR content, the cart's statements and files."""
        job = find(job_id)
        sr = files.kept_result(spool, job.job_id, "SR")
        source = files.source_file(spool, job)
        try:
            tree = jobs_view.sr_tree(sr) if sr is not None else None
        except Exception:  # a kept file that cannot be read shows no tree
            tree = None
        try:
            waveform = job.sop_class_uid in WAVEFORM_SOP_CLASSES  # (statements are in waveforms)
            said = jobs_view.statements(source) if source is not None and waveform else []
        except Exception:  # an unreadable source has no statements to show
            said = []
        retryable = job.state == JobState.FAILED and job.origin == "dicom" and (
            spool.instance_path(job.job_id).is_file() or sr is not None)
        return {**summary(job), "result": job.result, "attempts": job.attempts,
                "delivery_attempts": job.delivery_attempts, "sr_tree": tree,
                "statements": said, "files": files.available(spool, job),
                "retryable": retryable}

    @router.get("/jobs/{job_id}/files/{name}", response_class=FileResponse)
    def job_file(job_id: str, name: str) -> FileResponse:
        """A file of the job: source, sr, sc (DICOM), annotated.png, page.png."""
        job = find(job_id)
        if name not in files.FILE_NAMES:
            raise HTTPException(404, f"no file {name}: one of {', '.join(files.FILE_NAMES)}")
        try:
            path = files.resolve(spool, job, name, pipeline)
        except InputError as exc:
            raise HTTPException(422, str(exc).replace(str(spool.root), "spool")) from exc
        if path is None:
            raise HTTPException(404, f"job {job_id} has no {name} (not made, or removed "
                                     "by retention)")
        inline = name.endswith(".png")
        return FileResponse(
            path, media_type=files.media_type(path),
            filename=files.download_name(job, name, Path(path)),
            content_disposition_type="inline" if inline else "attachment",
        )

    @router.post("/jobs/{job_id}/retry")
    def retry(job_id: str) -> dict[str, Any]:
        """Queue a failed job again (to delivery when its SR/SC were built)."""
        job = find(job_id)
        if job.origin == "upload":
            return {"queued": False, "why": f"{job_id}: an upload is classified when it is "
                                            "uploaded: upload the file again"}
        queued = retry_failed(spool, queue, [job_id])
        return {"queued": bool(queued),
                **({} if queued else {"why": not_retried_because(spool, job_id)})}

    @router.post("/uploads", openapi_extra=_MULTIPART)
    async def uploads(request: Request) -> dict[str, Any]:
        """Keep and classify one or many files (DICOM, PNG, JPEG, PDF) as jobs."""
        kept = []
        form = await _read_form(request, settings)
        try:
            for upload in _files(form, "files"):
                data = await upload.read()
                try:
                    done = await run_in_threadpool(
                        keep_upload, spool, pipeline, data, upload.filename or "")
                except ModelError as exc:
                    raise HTTPException(503, f"model unavailable: {exc}") from exc
                kept.append(done.job_id)
        finally:
            await form.close()
        return {"jobs": [summary(find(job_id)) for job_id in kept]}

    @router.post("/classify", openapi_extra=_ONE_FILE)
    async def classify(request: Request, image: bool = True) -> dict[str, Any]:
        """Classify one file without keeping it; ``image=false`` leaves out the page."""
        form = await _read_form(request, settings)
        try:
            [upload, *_] = _files(form, "file")
            data = await upload.read()
        finally:
            await form.close()
        try:
            return await run_in_threadpool(
                lambda: classify_bytes(pipeline, data, upload.filename or "", image=image))
        except InputError as exc:
            raise HTTPException(422, str(exc)) from exc
        except ModelError as exc:
            raise HTTPException(503, f"model unavailable: {exc}") from exc

    outer = APIRouter()
    outer.include_router(router)
    outer.include_router(docs_router())
    return outer

