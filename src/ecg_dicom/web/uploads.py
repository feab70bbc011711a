"""Uploads: a file classified in its HTTP request, with or without keeping it.

* :func:`classify_bytes` - ``POST /api/classify``: the result and, unless left
  out, the annotated page (PNG, base64); nothing is kept;
* :func:`keep_upload` - ``POST /api/uploads``: the file is kept in the spool as a
  job of origin "upload" (a DICOM file as ``instances/<id>.dcm``, a picture or
  PDF as ``results/<id>/source.<ext>``), classified by the same pipeline as a
  received ECG (``Pipeline.read_file``), its annotated page written to
  ``results/<id>/annotated.png`` and its row recorded ``done`` with the result,
  or ``failed`` with the reason.  An upload is never queued nor sent to a PACS.

Errors name the uploaded file's name, never a path on the server
(:func:`without_paths`).
"""

from __future__ import annotations

import base64
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom import dcmread

from ecg_dicom.durable import write_atomic
from ecg_dicom.errors import InputError, ModelError
from ecg_dicom.jobs import Arrival, JobState, Spool
from ecg_dicom.pipeline import Pipeline, Reading
from ecg_dicom.results import draw_result
from ecg_dicom.web.files import UPLOAD_KINDS, encode_png

log = logging.getLogger("ecg_dicom.web")

#: Longest uploaded file name kept (the rest is cut).
MAX_NAME = 200


def upload_kind(data: bytes) -> str:
    """"png", "jpg", "pdf" from the first bytes; "dcm" for anything else (the page
    reader sniffs it and says what is wrong)."""
    for magic, kind in UPLOAD_KINDS.items():
        if data.startswith(magic):
            return kind
    return "dcm"


def clean_name(filename: str | None) -> str:
    """The uploaded file's own name (no folders), cut to :data:`MAX_NAME`."""
    name = Path((filename or "").replace("\\", "/")).name.strip() or "upload"
    return name[:MAX_NAME]


def without_paths(message: str, path: Path, name: str) -> str:
    """``message`` with every mention of the server-side ``path`` (and of its folders)
    replaced by the uploaded file's name."""
    for text in (str(path), str(path.resolve())):
        message = message.replace(text, name)
    for folder in (path.parent, path.resolve().parent, Path(tempfile.gettempdir())):
        message = message.replace(str(folder), "…")
    return message


def named(message: str, path: Path, name: str) -> str:
    """An error about the uploaded file, naming it (never the server-side path)."""
    message = without_paths(message, path, name)
    return message if name in message else f"{name}: {message}"


def annotated(reading: Reading) -> bytes:
    """The annotated page of a reading, as PNG."""
    return encode_png(draw_result(reading.page, reading.result))


def classify_bytes(pipeline: Pipeline, data: bytes, filename: str, *,
                   image: bool = True) -> dict[str, Any]:
    """Render + detect uploaded bytes; the result, and the annotated page unless
    ``image`` is False.  Raises InputError (naming ``filename``) or ModelError."""
    name = clean_name(filename)
    with tempfile.NamedTemporaryFile(suffix=f".{upload_kind(data)}") as fh:
        fh.write(data)
        fh.flush()
        path = Path(fh.name)
        try:
            reading = pipeline.read_file(path)
        except InputError as exc:
            raise InputError(named(str(exc), path, name)) from exc
    body: dict[str, Any] = reading.result.to_dict()
    if image:
        body["annotated_png"] = base64.b64encode(annotated(reading)).decode()
    return body


@dataclass(frozen=True)
class KeptUpload:
    """What :func:`keep_upload` recorded."""

    job_id: str
    state: JobState
    reason: str


def _dicom_arrival(path: Path, name: str, size: int) -> Arrival:
    """The identity of an uploaded DICOM file (best effort: empty when unreadable)."""
    try:
        ds = dcmread(path, stop_before_pixels=True, defer_size=1024, specific_tags=[
            "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "PatientName", "PatientID",
            "StudyDate", "StudyDescription",
        ])
    except Exception:  # the page reader says what is wrong with it
        return Arrival("", "", origin="upload", filename=name, size=size)

    def text(keyword: str) -> str:
        return str(ds.get(keyword, "") or "")[:256]

    return Arrival(
        text("SOPClassUID"), text("SOPInstanceUID"), study_instance_uid=text("StudyInstanceUID"),
        patient_name=text("PatientName"), patient_id=text("PatientID"),
        study_date=text("StudyDate"), study_description=text("StudyDescription"),
        origin="upload", filename=name, size=size,
    )


def keep_upload(spool: Spool, pipeline: Pipeline, data: bytes, filename: str) -> KeptUpload:
    """Keep one uploaded file as a job and classify it (see the module docstring).

    Raises ModelError (nothing kept: the model, not the file, is at fault)."""
    name = clean_name(filename)
    job_id = spool.new_job_id()
    kind = upload_kind(data)
    results = spool.results_path(job_id)
    results.mkdir(parents=True, exist_ok=True)
    path = spool.instance_path(job_id) if kind == "dcm" else results / f"source.{kind}"
    write_atomic(path, data)
    arrival = (_dicom_arrival(path, name, len(data)) if kind == "dcm"
               else Arrival("", "", origin="upload", filename=name, size=len(data)))
    try:
        reading = pipeline.read_file(path)
        write_atomic(results / "annotated.png", annotated(reading))
    except ModelError:
        path.unlink(missing_ok=True)
        shutil.rmtree(results, ignore_errors=True)
        raise
    except InputError as exc:
        reason = named(str(exc), path, name)
        spool.record_upload(job_id, arrival, JobState.FAILED, reason, None)
        return KeptUpload(job_id, JobState.FAILED, reason)
    except Exception as exc:  # a bug: the job says so, the log has the traceback
        log.exception("upload %s could not be classified", job_id)
        reason = named(f"{type(exc).__name__}: {exc}", path, name)
        spool.record_upload(job_id, arrival, JobState.FAILED, reason, None)
        return KeptUpload(job_id, JobState.FAILED, reason)
    reason = "classified on upload (not sent to a PACS)"
    spool.record_upload(job_id, arrival, JobState.DONE, reason, reading.result.to_dict())
    return KeptUpload(job_id, JobState.DONE, reason)
