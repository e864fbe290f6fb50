"""The FastAPI app: a JSON API over the job queue, Server-Sent Events for progress, and the page in ``static/``.

``create_app(results_dir, device, limits=...)`` builds it; ``impasto serve`` runs it under uvicorn. Uploads are
checked by decoding them (never by name or content type), the request body is capped before it is read, and no value
from a request becomes a path: job ids are looked up in the queue, files are named by the queue.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, get_args

from PIL import Image

from .. import __version__
from ..api import resolve_device
from ..config import PRESETS, PreserveColor, StyleConfig, field_docs, from_dict
from ..errors import ConfigError, ImageError
from ..io.images import LoadedImage, load_image
from . import MissingExtra
from .jobs import FINAL, Job, JobQueue

try:
    from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.concurrency import run_in_threadpool
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.types import ASGIApp, Message, Receive, Scope, Send
except ModuleNotFoundError as e:  # the optional extra
    raise MissingExtra(f"impasto serve needs {e.name}: pip install 'impasto[web]'") from None

STATIC = Path(__file__).parent / "static"
POLL_S = 0.1  # how often an event stream looks for news (cheap: it compares one counter)
KEEPALIVE_S = 15.0
# Settings that belong to the server, not to a request: where it runs, how big an input may be, files on disk.
SERVER_FIELDS = {"device": "impasto serve --device", "max_pixels": "impasto serve --max-pixels",
                 "save_every": "previews come through /events"}
PAGE_HEADERS = {  # the page needs nothing from elsewhere; say so to the browser
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
                               "script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class Limits:
    """What one request may ask for (``impasto serve --max-upload-mb/--max-pixels/--max-size``)."""

    max_upload_bytes: int = 32 * 2**20  # the whole multipart request
    max_pixels: int = 25_000_000  # per input image, checked from its header before decoding
    max_size: int = 2048  # long side of the result
    max_styles: int = 3


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
            await _send_error(send, TooLarge(self.max_bytes))
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
                await _send_error(send, e)


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
                await _send_error(send, HTTPException(403, "cross-origin requests are refused; use the page this "
                                                           "server serves, or a script"))
                return
        await self.app(scope, receive, send)


async def _send_error(send: Send, e: HTTPException) -> None:
    body = json.dumps({"detail": e.detail}).encode()
    await send({"type": "http.response.start", "status": e.status_code,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def label(filename: str | None, fallback: str) -> str:
    """An uploaded file's name as a display label only: no folders, printable, short."""
    name = re.split(r"[/\\]", filename or "")[-1]
    name = "".join(c for c in name if c.isprintable()).strip()[:80]
    return name or fallback


def parse_config(text: str, blend: str | None, n_styles: int, device: str, limits: Limits) -> StyleConfig:
    """The ``config`` form field (JSON) → a StyleConfig validated like everywhere else, plus the server's rules."""
    try:
        data = json.loads(text or "{}")
    except json.JSONDecodeError as e:
        raise HTTPException(400, f"config is not valid JSON ({e.msg} at character {e.pos}); "
                                 'send an object such as {"size": 256, "style_weight": 30}') from None
    if not isinstance(data, dict):
        raise HTTPException(400, 'config must be a JSON object such as {"size": 256, "style_weight": 30}')
    for key, where in SERVER_FIELDS.items():
        if key in data:
            raise HTTPException(422, f"{key} is set by the server ({where}); leave it out of config")
    if blend is not None:
        if "style_blend" in data:
            raise HTTPException(422, "style_blend is given twice (form field and config); give it once")
        data["style_blend"] = blend
    try:
        cfg = from_dict(data)
    except ConfigError as e:
        raise HTTPException(422, str(e)) from None
    if cfg.init not in ("content", "noise"):
        raise HTTPException(422, f"init = {cfg.init!r} is invalid here: use content or noise "
                                 "(the server reads no paths from requests)")
    if cfg.weights not in ("bundled", "torchvision"):
        raise HTTPException(422, f"weights = {cfg.weights!r} is invalid here: use bundled or torchvision "
                                 "(the server reads no paths from requests)")
    long_side = max(cfg.shape) if cfg.shape else cfg.size
    if long_side > limits.max_size:
        raise HTTPException(422, f"size = {long_side} is over this server's limit of {limits.max_size} px "
                                 "(impasto serve --max-size)")
    if cfg.style_blend is not None and len(cfg.style_blend) != n_styles:
        raise HTTPException(422, f"style_blend has {len(cfg.style_blend)} weights for {n_styles} style image(s); "
                                 "give one weight per style image")
    return cfg.replace(device=device)


def decode(data: bytes, name: str, field: str, limits: Limits) -> LoadedImage:
    """Bytes → RGB image, or a 400 that names the form field and the problem. The type is what decodes."""
    if not data:
        raise HTTPException(400, f"{field}: the file {name!r} is empty")
    try:
        return load_image(data, max_pixels=limits.max_pixels, name=name)
    except ImageError as e:
        raise HTTPException(400, f"{field}: {e}") from None


def urls(job_id: str, n_inputs: int = 0) -> dict[str, Any]:
    base = f"/api/jobs/{job_id}"
    return {"self": base, "events": f"{base}/events", "image": f"{base}/image",
            "download": f"{base}/image?download=true", "inputs": [f"{base}/inputs/{i}" for i in range(n_inputs)]}


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def create_app(results_dir: str | Path, device: str = "auto", *, limits: Limits | None = None,
               preview_every: int = 10, allowed_hosts: list[str] | None = None, start_worker: bool = True) -> FastAPI:
    """The web app. ``allowed_hosts`` (e.g. loopback names) guards against DNS rebinding; None allows any."""
    limits = limits or Limits()
    dev = str(resolve_device(device))  # an unavailable device is an error now, not at the first job
    queue = JobQueue(results_dir, dev, preview_every=preview_every)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if start_worker:
            queue.start()
        yield
        await run_in_threadpool(queue.close)

    app = FastAPI(title="impasto", version=__version__, lifespan=lifespan,
                  description="Neural style transfer (Gatys et al.) on VGG19: queue jobs, watch them, fetch results.")
    app.state.queue = queue
    app.state.limits = limits
    app.add_middleware(BodyLimit, max_bytes=limits.max_upload_bytes)
    app.add_middleware(SameOrigin)
    if allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)

    @app.exception_handler(RequestValidationError)
    async def one_line(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(x) for x in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"detail": "; ".join(parts)}, status_code=422)

    def find(job_id: str) -> Job:
        job = queue.get(job_id)
        if job is None:
            raise HTTPException(404, "no such job (ids come from POST /api/jobs)")
        return job

    def describe(job: Job, history: bool = False) -> dict[str, Any]:
        d = queue.describe(job, history=history)
        d["urls"] = urls(job.id, 1 + len(job.inputs["styles"]))
        return d

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={**PAGE_HEADERS, "Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/health", summary="Is the server up; what is it running")
    def health() -> dict[str, Any]:
        jobs = queue.jobs(limit=10_000)
        return {"status": "ok", "impasto": __version__, "device": queue.device,
                "queued": sum(j.status == "queued" for j in jobs),
                "running": next((j.id for j in jobs if j.status == "running"), None)}

    @app.get("/api/settings", summary="Defaults, presets, choices, help texts and this server's limits")
    def settings() -> dict[str, Any]:
        return {"defaults": StyleConfig().to_dict(), "presets": PRESETS,
                "choices": {"preserve_color": get_args(PreserveColor)},
                "help": field_docs(), "limits": asdict(limits), "server_fields": sorted(SERVER_FIELDS)}

    @app.post("/api/jobs", status_code=201, summary="Queue a job: content image, style images, settings")
    async def submit(
        content: Annotated[UploadFile, File(description="The content image (decoded to check it; any name)")],
        style: Annotated[list[UploadFile], File(description="One or more style images: repeat the field")],
        config: Annotated[str, Form(description='Settings as a JSON object with StyleConfig\'s field names, e.g. '
                                                '{"preset": "preview", "size": 256, "style_weight": 30}')] = "{}",
        style_blend: Annotated[str | None, Form(description="Weights of the style images, e.g. 0.3,0.7")] = None,
    ) -> JSONResponse:
        """Returns the job's id (random, unguessable), its queue position and its URLs (201)."""
        if len(style) > limits.max_styles:
            raise HTTPException(422, f"{len(style)} style images: give at most {limits.max_styles}")
        cfg = parse_config(config, style_blend, len(style), queue.device, limits)
        files = [("content", content, "content")] + [(f"style {i + 1}", f, f"style-{i + 1}")
                                                      for i, f in enumerate(style)]
        raw = []
        for field, f, fallback in files:
            data = await f.read(limits.max_upload_bytes + 1)
            await f.close()
            if len(data) > limits.max_upload_bytes:
                raise TooLarge(limits.max_upload_bytes)
            raw.append((data, label(f.filename, fallback), field))

        def load_and_queue() -> Job:  # decoding and PNG encoding take CPU time: off the event loop
            images = [decode(data, name, field, limits) for data, name, field in raw]
            return queue.submit(images[0], images[1:], cfg)

        job = await run_in_threadpool(load_and_queue)
        return JSONResponse(describe(job), status_code=201, headers={"Location": f"/api/jobs/{job.id}"})

    @app.get("/api/jobs", summary="Recent jobs, newest first (the gallery)")
    def list_jobs(limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        return {"jobs": [describe(j) for j in queue.jobs(limit)]}

    @app.get("/api/jobs/{job_id}", summary="A job's status, step, losses, position, timings and loss history")
    def get_job(job_id: str) -> dict[str, Any]:
        return describe(find(job_id), history=True)

    @app.delete("/api/jobs/{job_id}", status_code=202, summary="Cancel a job (queued: at once; running: after "
                                                                "its current step, keeping the image so far)")
    def cancel(job_id: str) -> dict[str, Any]:
        job = find(job_id)
        if not queue.cancel(job):
            raise HTTPException(409, f"the job has already ended ({job.status}); nothing to cancel")
        return describe(job)

    @app.get("/api/jobs/{job_id}/image", summary="The final PNG (with its recipe), else the latest preview",
             response_class=Response, responses={200: {"content": {"image/png": {}}}})
    async def image(job_id: str, download: bool = False,
                    thumb: Annotated[int | None, Query(ge=16, le=1024, description="longest side")] = None,
                    ) -> Response:
        job = find(job_id)
        found = queue.image(job)
        if found is None:
            raise HTTPException(404, f"the job has no image yet ({job.status})")
        headers = {"Cache-Control": "no-cache" if isinstance(found, Path) else "no-store"}
        if download:
            headers["Content-Disposition"] = f'attachment; filename="impasto-{job.id[:8]}.png"'
        if thumb is not None:
            data = await run_in_threadpool(_thumbnail, found, thumb)
            return Response(data, media_type="image/png", headers=headers)
        if isinstance(found, Path):
            return FileResponse(found, media_type="image/png", headers=headers)
        return Response(found, media_type="image/png", headers=headers)

    @app.get("/api/jobs/{job_id}/inputs/{index}", summary="An input image: 0 is the content, 1... the styles",
             response_class=FileResponse, responses={200: {"content": {"image/png": {}}}})
    def input_image(job_id: str, index: int) -> FileResponse:
        job = find(job_id)
        if not 0 <= index <= len(job.inputs["styles"]):
            raise HTTPException(404, f"input {index}: the job has inputs 0 to {len(job.inputs['styles'])}")
        return FileResponse(job.input_path(index), media_type="image/png", headers={"Cache-Control": "max-age=86400"})

    @app.get("/api/jobs/{job_id}/events", summary="Server-Sent Events: state, status, progress, preview, end",
             response_class=StreamingResponse, responses={200: {"content": {"text/event-stream": {}}}})
    async def events(job_id: str) -> StreamingResponse:
        """``state`` first (the whole job, with its loss history), then ``status`` (queued position, running),
        ``progress`` (one per step: step, total_steps, losses), ``preview`` (a URL every few steps) and ``end``
        (status, message, final image URL); the stream closes after ``end``."""
        job = find(job_id)
        return StreamingResponse(_stream(job), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def _stream(job: Job) -> AsyncIterator[str]:
        snap = describe(job, history=True)
        sent, preview, status = len(snap["history"]), snap["preview_step"], (snap["status"], snap["position"])
        yield _sse("state", snap)
        if snap["status"] in FINAL:
            yield _sse("end", snap)
            return
        version, beat = -1, time.monotonic()
        while not queue.streams_ended:
            if queue.version == version:
                if time.monotonic() - beat > KEEPALIVE_S:
                    beat = time.monotonic()
                    yield ": keep-alive\n\n"
                await asyncio.sleep(POLL_S)
                continue
            version = queue.version
            snap = describe(job)
            for entry in queue.history_since(job, sent):
                sent += 1
                yield _sse("progress", {**entry, "total_steps": snap["total_steps"]})
            if snap["preview_step"] != preview and snap["status"] == "running":
                preview = snap["preview_step"]
                yield _sse("preview", {"step": preview, "url": f"{snap['urls']['image']}?step={preview}"})
            if (snap["status"], snap["position"]) != status:
                status = (snap["status"], snap["position"])
                if snap["status"] in FINAL:
                    yield _sse("end", snap)
                    return
                yield _sse("status", {"status": status[0], "position": status[1], "message": snap["message"]})

    return app


def _thumbnail(found: bytes | Path, side: int) -> bytes:
    with Image.open(io.BytesIO(found) if isinstance(found, bytes) else found) as opened:
        im = opened.convert("RGB")
    im.thumbnail((side, side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()
