"""A synchronous HTTP client that calls an ASGI app in process (httpx over a blocking portal), for
the demo, notebooks and tests.

Like Starlette's TestClient, without its dependency on a second httpx package: requests go
through ``httpx.ASGITransport`` on an event loop in a helper thread, and an exception the app
did not answer (a bug) is raised in the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio.from_thread
import httpx


class _PortalTransport(httpx.BaseTransport):
    def __init__(self, app: Any, portal: anyio.from_thread.BlockingPortal) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.portal = portal

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def call() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            forwarded = httpx.Request(request.method, request.url, headers=request.headers, content=body)
            response = await self.inner.handle_async_request(forwarded)
            content = await response.aread()
            return response.status_code, response.headers.raw, content

        status, headers, content = self.portal.call(call)
        return httpx.Response(status, headers=headers, content=content, request=request)


@contextmanager
def asgi_client(app: Any, base_url: str = "http://testserver") -> Iterator[httpx.Client]:
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        httpx.Client(transport=_PortalTransport(app, portal), base_url=base_url) as client,
    ):
        yield client
