"""The viewer's pages as files, without a browser: what they load, and how they are served.

The pages must work offline (a hospital network without the internet): nothing they
reference may live elsewhere, and everything they reference must be served.  The
static route serves only the folder's own plain names.  (What the pages do is
tested in a real Chromium by test_browser.py.)
"""

from __future__ import annotations

import re

import pytest
from asgi_client import AsgiClient
from fastapi import FastAPI

from ecg_dicom.results import DISPLAY_NAMES
from ecg_dicom.web import pages

PAGES = {"/": "index.html", "/job/abc123": "job.html", "/login": "login.html"}
ASSET_FILES = sorted(p for p in pages.STATIC.iterdir() if p.is_file())


@pytest.fixture(scope="module")
def client() -> AsgiClient:
    app = FastAPI()
    app.include_router(pages.router)
    return AsgiClient(app)


def test_nothing_is_loaded_from_elsewhere() -> None:
    assert {p.name for p in ASSET_FILES} >= {
        "index.html", "job.html", "login.html", "app.js", "list.js", "job.js", "login.js",
        "style.css"}
    for path in ASSET_FILES:
        text = path.read_text(encoding="utf-8")
        remote = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.IGNORECASE)
        assert not remote, f"{path.name} refers to {remote}"
        assert "@import" not in text and "url(" not in text, path.name


@pytest.mark.parametrize("route", sorted(PAGES))
def test_each_page_is_served_with_the_class_names_and_everything_it_loads(
    client: AsgiClient, route: str
) -> None:
    rsp = client.get(route)
    assert rsp.status_code == 200 and rsp.headers["content-type"].startswith("text/html")
    assert pages.NAMES_MARK not in rsp.text
    assert "not for diagnostic use" in rsp.text
    if route != "/login":
        for code, words in DISPLAY_NAMES.items():
            assert f'"{code}": "{words}"' in rsp.text
    loaded = re.findall(r'(?:src|href)="(/static/[^"]+)"', rsp.text)
    assert loaded
    for ref in loaded:
        asset = client.get(ref)
        assert asset.status_code == 200, ref
        kind = "text/css" if ref.endswith(".css") else "text/javascript"
        assert asset.headers["content-type"].startswith(kind), ref


@pytest.mark.parametrize("name", [
    "..%2fpages.py", "%2e%2e%2fapp.py", "app.py", "missing.js", ".hidden.js", "APP.JS",
    "index.html",  # pages are served at their routes, with the names filled in
])
def test_the_static_route_serves_only_the_folders_own_assets(
    client: AsgiClient, name: str
) -> None:
    assert client.get(f"/static/{name}").status_code == 404


def test_job_page_of_a_malformed_id_is_not_found(client: AsgiClient) -> None:
    assert client.get("/job/abc-123").status_code == 404
