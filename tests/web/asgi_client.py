"""An in-process HTTP client for the FastAPI app: httpx over ASGI, no socket.

Starlette's TestClient warns (deprecated with httpx; it wants httpx2), and warnings are
errors here, so the tests talk to the app through httpx's own ASGI transport: every
middleware and route runs exactly as under uvicorn, in this process.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI

#: The double-submit CSRF value the client sends on every request (cookie and header),
#: as the viewer's pages do (web/security.py).
CSRF = "test-csrf-value"


class AsgiClient:
    """``get``/``post`` against an app, as the viewer's page on ``base_url`` sends them
    (with the ``csrf`` cookie and the ``X-CSRF-Token`` header)."""

    def __init__(self, app: FastAPI, base_url: str = "http://127.0.0.1:8080") -> None:
        self.app = app
        self.base_url = base_url

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(
                transport=transport, base_url=self.base_url, cookies={"csrf": CSRF},
                headers={"X-CSRF-Token": CSRF},
            ) as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(send())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)
