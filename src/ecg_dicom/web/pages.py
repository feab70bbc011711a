"""The web viewer's HTML pages and their static files (no framework, nothing from a CDN).

* ``GET /`` - the study list: every ECG received over DICOM or uploaded, with filters,
  paging, live updates (the page polls ``/api/jobs?updated_after=`` every 2 s) and the
  upload drop zone;
* ``GET /job/{id}`` - one job: the annotated page, the rendered source page, the result
  in words, the SR content as a tree, the cart's own statements, downloads, retry;
* ``GET /login`` - the sign-in form (the access token; ``POST /login`` belongs to
  ``web/security.py``);
* ``GET /static/{name}`` - the pages' scripts and style sheet.

The pages are plain HTML files in ``static/``; their scripts read everything from the
JSON API (``web/api.py``), so what a person sees is what the API says.  The only value
put into the HTML here is the table of class names for people
(:data:`ecg_dicom.results.DISPLAY_NAMES`), so the browser shows "Acute MI"
where the data set says "MI-ECG" without a copy of that table in JavaScript.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

from ecg_dicom.results import DISPLAY_NAMES

STATIC = Path(__file__).parent / "static"
#: The placeholder in each page that becomes the class-name table (JSON).
NAMES_MARK = "__CLASS_NAMES__"
#: Static files the pages use, by suffix: one folder level, plain names only.
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
STATIC_NAME = re.compile(r"^[a-z][a-z0-9-]*\.(js|css|svg|png)$")
#: Pages change with each release; the browser asks again (the files are small).
NO_STORE = {"Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


def page_html(name: str) -> str:
    """A page from ``static/`` with the class-name table filled in."""
    names = json.dumps(DISPLAY_NAMES).replace("<", "\\u003c")
    return (STATIC / name).read_text(encoding="utf-8").replace(NAMES_MARK, names)


@router.get("/", response_class=HTMLResponse)
def study_list() -> HTMLResponse:
    """The study list with the upload drop zone."""
    return HTMLResponse(page_html("index.html"), headers=NO_STORE)


@router.get("/job/{job_id}", response_class=HTMLResponse)
def job_page(job_id: str) -> HTMLResponse:
    """One job's page; its script loads ``/api/jobs/{id}`` (an unknown id says so there)."""
    if not job_id.isalnum():
        raise HTTPException(404, f"no job {job_id}")
    return HTMLResponse(page_html("job.html"), headers=NO_STORE)


@router.get("/login", response_class=HTMLResponse)
def login_page() -> HTMLResponse:
    """The sign-in form: the access token (``http.token``) is posted to ``/login``."""
    return HTMLResponse(page_html("login.html"), headers=NO_STORE)


@router.get("/static/{name}")
def static_file(name: str) -> FileResponse:
    """A script, style sheet or picture of the pages (nothing outside ``static/``)."""
    path = STATIC / name
    if not STATIC_NAME.match(name) or not path.is_file():
        raise HTTPException(404, "no such file")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=NO_STORE)
