"""The files of a job, as the viewer downloads and shows them.

``/api/jobs/{id}/files/{name}``, with ``name`` one of :data:`FILE_NAMES`:

* ``source`` - the object as received (``instances/<id>.dcm``), or an uploaded
  picture or PDF as uploaded (``results/<id>/source.<ext>``);
* ``sr`` / ``sc`` - the SR and the annotated SC kept in ``results/<id>/``
  (until retention removes them);
* ``annotated.png`` - the annotated page: an upload's (written when it was
  classified), else the SC's pixels, decoded once and cached beside it;
* ``page.png`` - the source page as the model reads it, rendered on first request
  by the pipeline's page reader (a child process under ``limits.*``) and cached.

Nothing here takes a path from the request: every file is found from the job id
(checked alphanumeric by the spool) and a fixed name.
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
from pydicom import dcmread

from ecg_dicom.durable import write_atomic
from ecg_dicom.errors import NotInterpretableError
from ecg_dicom.jobs import Job, Spool
from ecg_dicom.pages import not_interpretable_page, page_from_file
from ecg_dicom.pipeline import Pipeline

FILE_NAMES = ("source", "sr", "sc", "annotated.png", "page.png")
#: The kinds of an uploaded file other than DICOM, by their first bytes.
UPLOAD_KINDS = {b"\x89PNG": "png", b"\xff\xd8": "jpg", b"%PDF": "pdf"}
MEDIA_TYPES = {"dcm": "application/dicom", "png": "image/png", "jpg": "image/jpeg",
               "pdf": "application/pdf"}
#: A job that failed in one of these stages has no page to show (its reason says why).
READ_STAGES = ("load:", "render:")
#: One render at a time per process: a page is cached after its first request.
_RENDER_LOCK = threading.Lock()


def encode_png(rgb: np.ndarray) -> bytes:
    """An RGB (or grey) image as PNG bytes."""
    image = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb
    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("could not encode the page as PNG")
    return bytes(png.tobytes())


def uploaded_source(spool: Spool, job_id: str) -> Path | None:
    """An uploaded picture or PDF kept in the job's results folder."""
    for kind in dict.fromkeys(UPLOAD_KINDS.values()):
        path = spool.results_path(job_id) / f"source.{kind}"
        if path.is_file():
            return path
    return None


def source_file(spool: Spool, job: Job) -> Path | None:
    """The job's input as received or uploaded (None: never kept, or removed)."""
    instance = spool.instance_path(job.job_id)
    if instance.is_file():
        return instance
    return uploaded_source(spool, job.job_id) if job.origin == "upload" else None


def kept_result(spool: Spool, job_id: str, kind: str) -> Path | None:
    """The kept SR or SC (``kind`` "SR" or "SC") of a job."""
    found = sorted(spool.results_path(job_id).glob(f"{kind}-*.dcm"))
    return found[0] if found else None


def available(spool: Spool, job: Job) -> list[str]:
    """The names of :data:`FILE_NAMES` this job has (or can render)."""
    source = source_file(spool, job)
    sc = kept_result(spool, job.job_id, "SC")
    names = []
    if source is not None:
        names.append("source")
    if kept_result(spool, job.job_id, "SR") is not None:
        names.append("sr")
    if sc is not None:
        names.append("sc")
    if sc is not None or (spool.results_path(job.job_id) / "annotated.png").is_file():
        names.append("annotated.png")
    unreadable = job.state == "failed" and job.reason.startswith(READ_STAGES)
    if source is not None and job.state != "skipped" and not unreadable:
        names.append("page.png")
    return names


def download_name(job: Job, name: str, path: Path) -> str:
    """The file name a download is saved under (no patient data in it)."""
    if name == "source":
        return f"{job.job_id}-source{path.suffix or '.dcm'}"
    if name in ("sr", "sc"):
        return f"{job.job_id}-{name.upper()}.dcm"
    return f"{job.job_id}-{name}"


def media_type(path: Path) -> str:
    return MEDIA_TYPES.get(path.suffix.lower().lstrip("."), "application/dicom")


def annotated_png(spool: Spool, job: Job) -> Path | None:
    """The annotated page as PNG: an upload's, else the SC's pixels (cached)."""
    cached = spool.results_path(job.job_id) / "annotated.png"
    if cached.is_file():
        return cached
    sc = kept_result(spool, job.job_id, "SC")
    if sc is None:
        return None
    pixels = dcmread(sc).pixel_array
    write_atomic(cached, encode_png(np.asarray(pixels, dtype=np.uint8)))
    return cached


def page_png(spool: Spool, job: Job, pipeline: Pipeline) -> Path | None:
    """The source's page as the model reads it, rendered once and cached.

    A page that cannot be interpreted is shown as the pipeline shows it (the traces
    that could be drawn, or a blank page with the reason); an unreadable input
    raises the pipeline's InputError."""
    cached = spool.results_path(job.job_id) / "page.png"
    if cached.is_file():
        return cached
    source = source_file(spool, job)
    if source is None:
        return None
    received = source == spool.instance_path(job.job_id) and job.origin == "dicom"
    with _RENDER_LOCK:
        if cached.is_file():
            return cached
        reader = pipeline.reader
        try:
            page = (reader.page(source, received=received) if reader is not None
                    else page_from_file(source, pipeline.settings.limits))
        except NotInterpretableError as exc:
            page = not_interpretable_page(exc)
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cached, encode_png(page.image))
    return cached


def resolve(spool: Spool, job: Job, name: str, pipeline: Pipeline) -> Path | None:
    """The file ``name`` of a job (rendering or decoding it when needed)."""
    if name == "source":
        return source_file(spool, job)
    if name in ("sr", "sc"):
        return kept_result(spool, job.job_id, name.upper())
    if name == "annotated.png":
        return annotated_png(spool, job)
    if name == "page.png":
        return page_png(spool, job, pipeline)
    return None
