"""``/docs`` (Swagger UI) and ``/redoc`` with their assets served by the node itself.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so they are blank in a
hospital network without internet access.  These pages load the same assets from
``/docs/assets/``, taken from the ``fastapi-offline`` package (MIT; it ships
swagger-ui-dist and ReDoc's standalone bundle), and turn off Swagger UI's online
validator badge.  The OpenAPI document itself is FastAPI's ``/openapi.json``.
"Try it out" sends the ``X-CSRF-Token`` header from the ``csrf`` cookie, as the
viewer's pages do (web/security.py refuses a POST without it).
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, HTTPException
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSET_NAMES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
OPENAPI_URL = "/openapi.json"
TITLE = "ecg-dicom API"
#: Swagger UI's requests carry the double-submit CSRF header (from the csrf cookie).
CSRF_INTERCEPTOR = """requestInterceptor: (req) => {
        const found = document.cookie.match(/(?:^|; )csrf=([^;]*)/);
        if (found) { req.headers["X-CSRF-Token"] = decodeURIComponent(found[1]); }
        return req;
    },
    presets: ["""


def docs_router() -> APIRouter:
    """The routes of the offline API documentation (left out of the schema)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    def swagger() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=OPENAPI_URL, title=TITLE,
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},
        )
        html = bytes(page.body).decode().replace("presets: [", CSRF_INTERCEPTOR, 1)
        return HTMLResponse(html)

    @router.get("/redoc")
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=OPENAPI_URL, title=TITLE,
            redoc_js_url="/docs/assets/redoc.standalone.js",
            redoc_favicon_url="/docs/assets/favicon.png", with_google_fonts=False,
        )

    @router.get("/docs/assets/{name}")
    def asset(name: str) -> FileResponse:
        if name not in ASSET_NAMES:
            raise HTTPException(404, f"no docs asset {name}")
        return FileResponse(ASSETS / name, media_type=ASSET_NAMES[name],
                            headers={"Cache-Control": "max-age=86400"})

    return router
