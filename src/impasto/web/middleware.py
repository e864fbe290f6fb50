"""The ASGI layers in front of the routes: the request-body cap, the same-origin check for changes, trusted hosts.

They are pure ASGI (not ``BaseHTTPMiddleware``) so that a refused request is answered before its body is read, and
an event stream is never buffered.
"""

from __future__ import annotations

import json

from . import MissingExtra

try:
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.types import ASGIApp, Message, Receive, Scope, Send
except ModuleNotFoundError as e:  # the optional extra
    raise MissingExtra(f"impasto serve needs {e.name}: pip install 'impasto[web]'") from None


class TooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the upload is larger than this server's limit of {limit / 2**20:.3g} MB "
                              "(impasto serve --max-upload-mb); send smaller images")


class BodyLimit:
    """Refuse a request body over ``max_bytes``: at once from its Content-Length, or while it streams in.

    Pure ASGI, so a too-large upload is answered before (or instead of) being read, never buffered whole.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await send_error(send, TooLarge(self.max_bytes))
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise TooLarge(self.max_bytes)  # FastAPI passes HTTPExceptions from the body through
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except TooLarge as e:
            if not started:
                await send_error(send, e)


class SameOrigin:
    """Refuse requests that change things (POST, DELETE) when a browser says they come from another site.

    A page elsewhere can send a plain form POST to a loopback server without asking first; browsers label such
    requests with ``Origin``. Scripts (curl, httpx) send no Origin and pass.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            headers = dict(scope.get("headers", []))
            origin, host = headers.get(b"origin"), headers.get(b"host", b"")
            if origin is not None and origin.split(b"://", 1)[-1] != host:
                await send_error(send, HTTPException(403, "cross-origin requests are refused; use the page this "
                                                          "server serves, or a script"))
                return
        await self.app(scope, receive, send)


async def send_error(send: Send, e: HTTPException) -> None:
    """Answer with ``{"detail": ...}`` as FastAPI would, from below FastAPI (and close: the body was not read)."""
    body = json.dumps({"detail": e.detail}).encode()
    await send({"type": "http.response.start", "status": e.status_code,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


async def one_line(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's validation errors (a list of dicts) as one line: ``field: problem; field: problem``."""
    parts = [f"{'.'.join(str(x) for x in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in exc.errors()]
    return JSONResponse({"detail": "; ".join(parts)}, status_code=422)


def install(app: FastAPI, *, max_upload_bytes: int, allowed_hosts: list[str] | None) -> None:
    """Add the layers (the last added runs first: hosts, then origin, then the body cap) and the error format."""
    app.add_middleware(BodyLimit, max_bytes=max_upload_bytes)
    app.add_middleware(SameOrigin)
    if allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    app.add_exception_handler(RequestValidationError, one_line)  # type: ignore[arg-type]
