"""Who may use the HTTP side, and from which page: sign-in, CSRF, Host names.

The viewer shows patient data.  These rules hold for every request
(:func:`install`, called by :func:`ecg_dicom.web.create_app`):

* **Host header** (DNS rebinding): a request must name the service as ``localhost``,
  an IP address (a rebinding page can only ever use a *name*), ``http.host`` or one
  of ``http.allowed_hosts`` (``["*"]``: any); else HTTP 421.
* **Sign-in** when ``http.token`` is set: everything but ``/healthz``, ``/login``,
  ``/logout`` and ``/static/*`` needs ``Authorization: Bearer <token>`` (API clients) or the session
  cookie ``POST /login`` gives for the token (people; HttpOnly, SameSite=Strict,
  ``http.session_hours`` long, signed with a key derived from the token, so changing
  the token ends every session).  A page request without either is sent to
  ``/login``; an API request gets 401.  Tokens are compared in constant time.
  Without a token the service only starts on a loopback address
  (:func:`check_http_access`, called by ``serve``).
* **CSRF** on every POST not authorised by the Bearer token (a browser cannot send
  that header to another site): refused (403) when ``Sec-Fetch-Site`` says
  ``cross-site``/``same-site`` or ``Origin`` names another origin; and the
  ``X-CSRF-Token`` header must equal the ``csrf`` cookie (double submit: a page of
  another site can neither read the cookie nor set the header).  ``POST /login`` and
  ``POST /logout`` take it as the form field ``csrf`` instead.  Every response to a
  request without the cookie sets it (readable by the pages' script, SameSite=Strict).
  A script without the token posts with ``-H 'X-CSRF-Token: x' -b 'csrf=x'``.
* **Upload size**: a request body declared larger than ``http.max_upload_mb`` is
  refused (413) before it is read.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import secrets
import time
from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from ecg_dicom.config import HttpSettings
from ecg_dicom.errors import ConfigError

SESSION_COOKIE = "ecg_dicom_session"
CSRF_COOKIE = "csrf"
CSRF_HEADER = "X-CSRF-Token"
#: Paths anyone may reach (health checks, the sign-in page and what it loads).
OPEN_PATHS = ("/healthz", "/login", "/logout")
OPEN_PREFIXES = ("/static/",)
#: Seconds a wrong token is answered late (slows down guessing).
WRONG_TOKEN_DELAY = 1.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Handler = Callable[[Request], Awaitable[Response]]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is reachable only from this machine."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_http_access(http: HttpSettings) -> None:
    """Refuse to serve patient data beyond this machine without a token (ConfigError)."""
    if http.enabled and not http.token and not is_loopback(http.host):
        raise ConfigError(
            f"http.host is {http.host!r}, which other machines can reach, and http.token is "
            "empty: the web viewer shows patient data. Set http.token (or the environment "
            "variable ECG_DICOM_HTTP__TOKEN) to a long random secret, or set http.host to "
            "127.0.0.1 and put the hospital's reverse proxy in front"
        )


def _host_name(header: str) -> str:
    """The name of a Host header, without its port ("[::1]:8080" -> "::1")."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class Access:
    """The rules of the module's docstring, for one app's settings."""

    def __init__(self, http: HttpSettings) -> None:
        self.http = http
        self.token = http.token.encode()
        # Derived from the token: sessions survive a restart, and end when it changes.
        self.key = hmac.new(self.token, b"ecg-dicom session v1", hashlib.sha256).digest()
        self.hosts = {"localhost", http.host.lower(), *(h.lower() for h in http.allowed_hosts)}
        self.max_body = http.max_upload_mb * 1024 * 1024

    # -- checks ---------------------------------------------------------------
    def host_allowed(self, header: str) -> bool:
        name = _host_name(header.strip()).lower().rstrip(".")
        return "*" in self.hosts or name in self.hosts or _is_address(name)

    def bearer_ok(self, request: Request) -> bool:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return bool(self.token) and scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode(), self.token)

    def token_ok(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.token)

    def session(self) -> str:
        """A new session cookie's value: its expiry and the signature of it."""
        expires = str(int(time.time() + self.http.session_hours * 3600))
        return f"{expires}.{self._sign(expires)}"

    def session_ok(self, value: str) -> bool:
        expires, _, signature = value.partition(".")
        return (expires.isdigit() and len(expires) < 16 and int(expires) > time.time()
                and hmac.compare_digest(signature, self._sign(expires)))

    def _sign(self, text: str) -> str:
        return hmac.new(self.key, text.encode(), hashlib.sha256).hexdigest()

    def cross_site(self, request: Request) -> str | None:
        """Why a POST comes from another site, or None."""
        site = request.headers.get("sec-fetch-site", "")
        if site in ("cross-site", "same-site"):
            return f"Sec-Fetch-Site: {site}"
        origin = request.headers.get("origin")
        if origin is None:
            return None
        # The name only: a reverse proxy may forward the Host without the port people use.
        name = (urlsplit(origin).hostname or "").rstrip(".")
        if name and (name == _host_name(request.headers.get("host", "")).lower().rstrip(".")
                     or name in self.hosts):
            return None
        return f"Origin {origin}"

    # -- the middleware -------------------------------------------------------
    async def __call__(self, request: Request, call_next: Handler) -> Response:
        if not self.host_allowed(request.headers.get("host", "")):
            return JSONResponse({"detail": "unknown host name (http.allowed_hosts)"}, 421)
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            return JSONResponse(
                {"detail": f"larger than {self.http.max_upload_mb} MB (http.max_upload_mb)"}, 413)
        path = request.url.path
        bearer = self.bearer_ok(request)
        if self.token and not bearer and not _open(path) and not self.session_ok(
                request.cookies.get(SESSION_COOKIE, "")):
            if request.method in SAFE_METHODS and "text/html" in request.headers.get("accept", ""):
                return RedirectResponse(f"/login?next={quote(path, safe='/')}", 303)
            return JSONResponse({"detail": "sign in: Authorization: Bearer <http.token>"}, 401,
                                headers={"WWW-Authenticate": "Bearer"})
        if request.method not in SAFE_METHODS and not bearer:
            why = self.cross_site(request)
            if why is None and path not in ("/login", "/logout"):  # those: a form field
                why = csrf_mismatch(request, request.headers.get(CSRF_HEADER, ""))
            if why is not None:
                return JSONResponse({"detail": f"refused (CSRF): {why}"}, 403)
        csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
        request.state.csrf = csrf
        response = await call_next(request)
        if CSRF_COOKIE not in request.cookies:
            response.set_cookie(CSRF_COOKIE, csrf, samesite="strict", path="/",
                                secure=request.url.scheme == "https")
        return response


def _open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def csrf_mismatch(request: Request, given: str) -> str | None:
    """Why ``given`` (header or form field) is not the request's ``csrf`` cookie, or None."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not given:
        return f"no {CSRF_HEADER} header or no csrf cookie"
    return None if hmac.compare_digest(cookie.encode(), given.encode()) else "csrf mismatch"


def install(app: FastAPI, http: HttpSettings) -> Access:
    """Put the access rules in front of ``app`` and add ``POST /login`` and ``/logout``."""
    access = Access(http)
    app.middleware("http")(access)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await request.form()
        field = str(form.get("csrf", ""))
        if csrf_mismatch(request, field):
            return JSONResponse({"detail": "refused (CSRF): reload the sign-in page"}, 403)
        next_path = str(form.get("next", "/"))
        if not next_path.startswith("/") or next_path.startswith("//"):
            next_path = "/"
        if not access.token:  # nothing to sign in to
            return RedirectResponse(next_path, 303)
        if not access.token_ok(str(form.get("token", ""))):
            await asyncio.sleep(WRONG_TOKEN_DELAY)
            return RedirectResponse(f"/login?error=1&next={quote(next_path, safe='/')}", 303)
        response = RedirectResponse(next_path, 303)
        response.set_cookie(SESSION_COOKIE, access.session(), httponly=True, samesite="strict",
                            max_age=int(http.session_hours * 3600), path="/",
                            secure=request.url.scheme == "https")
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        if csrf_mismatch(request, request.headers.get(CSRF_HEADER, "")) and csrf_mismatch(
                request, str((await request.form()).get("csrf", ""))):
            return JSONResponse({"detail": "refused (CSRF)"}, 403)
        response = RedirectResponse("/login", 303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    return access
