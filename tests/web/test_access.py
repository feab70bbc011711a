"""Access to the HTTP side (web/security.py): Host names, sign-in, CSRF, sizes, queries.

In-process through httpx's ASGI transport (every middleware and route runs as under
uvicorn), and once through a real ``ecg-dicom serve`` listening on every address and
reached over this machine's own non-loopback address, where the token is enforced.
A refused request must also have done nothing: the retry and upload tests look at
the ledger and the spool, not only at the status code.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI

from ecg_dicom.config import Settings
from ecg_dicom.errors import ConfigError
from ecg_dicom.jobs import Arrival, JobQueue, JobState, Spool
from ecg_dicom.pipeline import Pipeline
from ecg_dicom.web import create_app
from ecg_dicom.web.security import SESSION_COOKIE, check_http_access
from serve_proc import ServeProcess

TOKEN = "s3cret-token-for-tests-0123456789"
BASE = "http://127.0.0.1:8080"


def make_app(tmp_path: Path, **http: Any) -> tuple[FastAPI, Spool]:
    settings = Settings(
        storage={"spool_dir": tmp_path / "spool", "output_dir": tmp_path / "out",
                 "min_free_mb": 0},
        http=http,
    )
    spool = Spool(settings.storage.spool_dir, min_free_mb=0)
    return create_app(settings, spool, JobQueue(settings), Pipeline(settings)), spool


Body = Callable[[httpx.AsyncClient], Awaitable[None]]


def run(app: FastAPI, body: Body, base_url: str = BASE) -> None:
    """Run ``body`` with one client (one cookie jar, as one browser) against ``app``."""
    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            await body(client)

    asyncio.run(main())


def failed_job(spool: Spool) -> str:
    """A failed job whose input is still there (so a retry would queue it)."""
    job_id = spool.new_job_id()
    spool.instance_path(job_id).write_bytes(b"DICM")
    spool.record_received(job_id, Arrival(sop_class_uid="1.2.840.10008.5.1.4.1.1.9.1.1",
                                          sop_instance_uid="1.2.3", calling_ae="CART"))
    spool.update(job_id, state=JobState.FAILED, reason="test")
    return job_id


def test_host_header_names_checked(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path, allowed_hosts=["ecg.hospital.example"])

    async def body(client: httpx.AsyncClient) -> None:
        for host in ("evil.example", "evil.example:8080", "ecg.hospital.example.evil.example"):
            rsp = await client.get("/jobs", headers={"Host": host})
            assert rsp.status_code == 421, host
        for host in ("localhost:8080", "127.0.0.1:8080", "[::1]:8080", "192.0.2.7",
                     "ECG.Hospital.example:443"):
            assert (await client.get("/jobs", headers={"Host": host})).status_code == 200, host

    run(app, body)


def test_without_token_no_sign_in_but_csrf(tmp_path: Path) -> None:
    app, spool = make_app(tmp_path)
    job_id = failed_job(spool)

    async def body(client: httpx.AsyncClient) -> None:
        assert (await client.get("/jobs")).status_code == 200
        # A cross-site page posting to the loopback service (a form or fetch).
        rsp = await client.post(f"/jobs/{job_id}/retry",
                                headers={"Origin": "https://evil.example"})
        assert rsp.status_code == 403
        rsp = await client.post("/api/classify", files={"file": ("a.png", b"x" * 100)},
                                headers={"Origin": "https://evil.example",
                                         "Sec-Fetch-Site": "cross-site"})
        assert rsp.status_code == 403
        # Same origin but no double-submitted token: refused too.
        rsp = await client.post(f"/jobs/{job_id}/retry", headers={"Origin": BASE})
        assert rsp.status_code == 403 and "CSRF" in rsp.json()["detail"]
        job = spool.get(job_id)
        assert job is not None and job.state == JobState.FAILED  # nothing happened
        # The page's way: the csrf cookie (set by any earlier response) as the header.
        csrf = client.cookies["csrf"]
        rsp = await client.post(f"/jobs/{job_id}/retry",
                                headers={"X-CSRF-Token": csrf, "Origin": BASE,
                                         "Sec-Fetch-Site": "same-origin"})
        assert rsp.status_code == 200 and rsp.json()["queued"] == [job_id]
        # A cookie the header does not match (an attacker's guess) is refused.
        rsp = await client.post(f"/jobs/{job_id}/retry", headers={"X-CSRF-Token": "guess"})
        assert rsp.status_code == 403

    run(app, body)


def test_csrf_cookie_is_readable_by_the_page(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)

    async def body(client: httpx.AsyncClient) -> None:
        rsp = await client.get("/login")
        cookie = rsp.headers["set-cookie"]
        assert cookie.startswith("csrf=") and "samesite=strict" in cookie.lower()
        assert "httponly" not in cookie.lower()  # the page's script reads it
        again = await client.get("/healthz")
        assert "set-cookie" not in again.headers  # kept, not replaced

    run(app, body)


def test_token_required_everywhere_but_health_login_static(tmp_path: Path) -> None:
    app, spool = make_app(tmp_path, token=TOKEN)
    job_id = failed_job(spool)

    async def body(client: httpx.AsyncClient) -> None:
        for path in ("/jobs", f"/jobs/{job_id}", "/metrics", "/api/jobs", "/openapi.json"):
            rsp = await client.get(path)
            assert rsp.status_code == 401, path
            assert rsp.headers["www-authenticate"] == "Bearer"
        rsp = await client.get("/job/abc", headers={"Accept": "text/html"})
        assert rsp.status_code == 303 and rsp.headers["location"] == "/login?next=/job/abc"
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/login")).status_code == 200
        assert (await client.get("/static/style.css")).status_code == 200
        for wrong in ("Bearer nope", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer "):
            assert (await client.get("/jobs", headers={"Authorization": wrong})).status_code \
                == 401
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert (await client.get("/jobs", headers=bearer)).status_code == 200
        # An API client with the token needs no CSRF header (no browser can send it).
        rsp = await client.post(f"/jobs/{job_id}/retry", headers=bearer)
        assert rsp.status_code == 200 and rsp.json()["queued"] == [job_id]

    run(app, body)


def test_sign_in_session_and_sign_out(tmp_path: Path) -> None:
    app, spool = make_app(tmp_path, token=TOKEN, session_hours=2)
    job_id = failed_job(spool)

    async def body(client: httpx.AsyncClient) -> None:
        await client.get("/login")
        csrf = client.cookies["csrf"]
        form = {"token": TOKEN, "csrf": csrf, "next": "/job/x"}
        # The form without its CSRF field, or from another site: refused.
        rsp = await client.post("/login", data={"token": TOKEN, "next": "/"})
        assert rsp.status_code == 403
        rsp = await client.post("/login", data=form, headers={"Origin": "http://evil.example"})
        assert rsp.status_code == 403
        rsp = await client.post("/login", data={**form, "token": "wrong"})
        assert rsp.status_code == 303 and rsp.headers["location"].startswith("/login?error=1")
        assert SESSION_COOKIE not in client.cookies
        rsp = await client.post("/login", data={**form, "next": "//evil.example/"})
        assert rsp.headers["location"] == "/"  # never sent to another site
        client.cookies.delete(SESSION_COOKIE)
        rsp = await client.post("/login", data=form)
        assert rsp.status_code == 303 and rsp.headers["location"] == "/job/x"
        cookie = rsp.headers["set-cookie"].lower()
        assert all(part in cookie for part in ("httponly", "samesite=strict", "max-age=7200"))
        assert (await client.get("/jobs")).status_code == 200
        # Signed in, a POST still needs the double-submitted CSRF token.
        assert (await client.post(f"/jobs/{job_id}/retry")).status_code == 403
        rsp = await client.post(f"/jobs/{job_id}/retry", headers={"X-CSRF-Token": csrf})
        assert rsp.status_code == 200
        # A forged or edited session cookie is not a session.
        good = client.cookies[SESSION_COOKIE]
        expires, signature = good.split(".")
        for forged in (f"{int(expires) + 999}.{signature}", f"{expires}.{'0' * 64}", "1.x",
                       f"{'9' * 5000}.{signature}", "", "."):
            client.cookies.set(SESSION_COOKIE, forged, domain="127.0.0.1")
            assert (await client.get("/jobs")).status_code == 401
        client.cookies.set(SESSION_COOKIE, good, domain="127.0.0.1")
        rsp = await client.post("/logout", headers={"X-CSRF-Token": csrf})
        assert rsp.status_code == 303 and SESSION_COOKIE not in client.cookies
        assert (await client.get("/jobs")).status_code == 401

    run(app, body)


def test_a_new_token_ends_old_sessions(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path, token=TOKEN)
    sessions: list[str] = []

    async def sign_in(client: httpx.AsyncClient) -> None:
        await client.get("/login")
        await client.post("/login", data={"token": TOKEN, "csrf": client.cookies["csrf"]})
        sessions.append(client.cookies[SESSION_COOKIE])

    run(app, sign_in)
    other, _ = make_app(tmp_path / "2", token=TOKEN + "-new")

    async def reuse(client: httpx.AsyncClient) -> None:
        client.cookies.set(SESSION_COOKIE, sessions[0])
        assert (await client.get("/jobs")).status_code == 401

    run(other, reuse)


def test_queries_and_upload_size_validated(tmp_path: Path) -> None:
    app, spool = make_app(tmp_path, max_upload_mb=1)

    async def body(client: httpx.AsyncClient) -> None:
        await client.get("/healthz")
        csrf = {"X-CSRF-Token": client.cookies["csrf"]}
        for query in ("limit=1000000000000000000000", "limit=0", "limit=-1", "limit=x"):
            assert (await client.get(f"/jobs?{query}")).status_code == 422, query
        rsp = await client.post("/api/classify", headers=csrf,
                                files={"file": ("big.png", b"\0" * (1024 * 1024 + 10))})
        assert rsp.status_code == 413 and "http.max_upload_mb" in rsp.json()["detail"]

    run(app, body)
    assert spool.list_jobs(None, 10) == []


def test_no_token_refused_beyond_loopback() -> None:
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        check_http_access(Settings(http={"host": host}).http)
    check_http_access(Settings(http={"host": "0.0.0.0", "token": TOKEN}).http)
    check_http_access(Settings(http={"host": "0.0.0.0", "enabled": False}).http)
    for host in ("0.0.0.0", "::", "192.0.2.2", "ecg.hospital.example"):
        with pytest.raises(ConfigError, match="http.token"):
            check_http_access(Settings(http={"host": host}).http)


def this_machines_address() -> str:
    """This machine's own address on its network (not loopback)."""
    import psutil  # ultralytics' dependency

    found = [a.address for addresses in psutil.net_if_addrs().values() for a in addresses
             if a.family == socket.AF_INET and not a.address.startswith("127.")]
    assert found, "this machine has no non-loopback IPv4 address"
    return str(found[0])


def test_serve_refuses_to_start_on_all_addresses_without_token(tmp_path: Path) -> None:
    cfg = tmp_path / "site.yaml"
    cfg.write_text(yaml.safe_dump({
        "http": {"host": "0.0.0.0"},
        "storage": {"spool_dir": str(tmp_path / "spool"), "output_dir": str(tmp_path / "o")},
    }))
    done = subprocess.run([sys.executable, "-m", "ecg_dicom", "--config", str(cfg), "serve"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert "http.token" in done.stderr and "0.0.0.0" in done.stderr


def test_real_service_on_the_network_enforces_the_token(tmp_path: Path) -> None:
    address = this_machines_address()
    service = ServeProcess(tmp_path, {"http": {"host": "0.0.0.0", "token": TOKEN}}).start()
    try:
        base = f"http://{address}:{service.http_port}"

        def call(path: str, method: str = "GET", **headers: str) -> int:
            request = urllib.request.Request(base + path, method=method, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=10) as rsp:
                    return int(rsp.status)
            except urllib.error.HTTPError as exc:
                return exc.code

        assert call("/healthz") == 200
        assert call("/jobs") == 401
        assert call("/jobs?limit=5", Authorization="Bearer wrong") == 401
        assert call("/jobs?limit=5", Authorization=f"Bearer {TOKEN}") == 200
        assert call("/jobs/abc/retry", "POST", Origin="http://evil.example") == 401
        assert call("/jobs", Host="rebound.evil.example") == 421
    finally:
        assert service.stop() == 0
