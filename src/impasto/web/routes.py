"""The endpoints: the page, a JSON API over the job queue, and Server-Sent Events for progress.

Each endpoint finds the app's ``JobQueue`` and ``Limits`` through a dependency (``app.state``), so the routes are
plain functions on one router. No value from a request becomes a path: job ids are looked up in the queue and files
are named by the queue.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, get_args

from PIL import Image

from .. import __version__
from ..api import FINAL, LOSS_DESCRIPTIONS, STATUSES, estimate_run
from ..config import PRESETS, PreserveColor, StyleConfig, field_docs
from ..errors import OutputError, WriteError
from ..io.images import load_image, read_header, resize_exact
from . import MissingExtra
from . import examples as ex
from .budget import DecodeBudget
from .forms import SERVER_FIELDS, Limits, decoded, parse_config
from .jobs import Job, JobQueue
from .maskfiles import mask_urls
from .maskroutes import read_masks

try:
    from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile
    from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
    from starlette.concurrency import run_in_threadpool
except ModuleNotFoundError as e:  # the optional extra
    raise MissingExtra(f"impasto serve needs {e.name}: pip install 'impasto[web]'") from None

STATIC = Path(__file__).parent / "static"
POLL_S = 0.1  # how often an event stream looks for news (cheap: it compares one counter)
KEEPALIVE_S = 15.0
PAGE_HEADERS = {  # the page needs nothing from elsewhere; say so to the browser
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
                               "script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter()


# async: a dependency that only reads app.state needs no trip to the thread pool
async def _queue(request: Request) -> JobQueue:
    queue: JobQueue = request.app.state.queue
    return queue


async def _limits(request: Request) -> Limits:
    limits: Limits = request.app.state.limits
    return limits


async def _budget(request: Request) -> DecodeBudget:
    budget: DecodeBudget = request.app.state.decode_budget
    return budget


Queue = Annotated[JobQueue, Depends(_queue)]
RequestLimits = Annotated[Limits, Depends(_limits)]
Budget = Annotated[DecodeBudget, Depends(_budget)]


def find(queue: JobQueue, job_id: str) -> Job:
    job = queue.get(job_id)
    if job is None:
        raise HTTPException(404, "no such job (ids come from POST /api/jobs)")
    return job


def urls(job_id: str, n_inputs: int = 0) -> dict[str, Any]:
    base = f"/api/jobs/{job_id}"
    return {"self": base, "events": f"{base}/events", "image": f"{base}/image", "cancel": f"{base}/cancel",
            "download": f"{base}/image?download=true", "inputs": [f"{base}/inputs/{i}" for i in range(n_inputs)],
            "photo": f"{base}/photo"}


def describe(queue: JobQueue, job: Job, history: bool = False) -> dict[str, Any]:
    d = queue.describe(job, history=history)
    d["urls"] = urls(job.id, 1 + len(job.inputs["styles"]))
    d["urls"].update(mask_urls(job.id, job.inputs))  # the painted regions (masks), if any
    return d


# -- the page and the server ------------------------------------------------------------------------------------------
@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={**PAGE_HEADERS, "Cache-Control": "no-cache"})


@router.get("/api/health", summary="Is the server up; what is it running", responses={200: ex.answer(ex.HEALTH)})
def health(queue: Queue) -> dict[str, Any]:
    jobs = queue.jobs(limit=10_000)
    return {"status": "ok", "impasto": __version__, "device": queue.device,
            "queued": sum(j.status == "queued" for j in jobs),
            "running": next((j.id for j in jobs if j.status == "running"), None)}


def settings_answer(limits: Limits) -> dict[str, Any]:
    return {"defaults": StyleConfig().to_dict(), "presets": PRESETS,
            "choices": {"preserve_color": get_args(PreserveColor)},
            "statuses": {"all": list(STATUSES), "final": [s for s in STATUSES if s in FINAL]},
            "losses": LOSS_DESCRIPTIONS,  # "total" and the objective's terms, in order: the chart's series
            "help": field_docs(), "limits": asdict(limits), "server_fields": sorted(SERVER_FIELDS)}


@router.get("/api/settings", summary="Defaults, presets, choices, help texts and this server's limits",
            responses={200: ex.answer(settings_answer(Limits()))})  # the answer itself, at the default limits
def settings(limits: RequestLimits) -> dict[str, Any]:
    return settings_answer(limits)


# -- jobs -------------------------------------------------------------------------------------------------------------
@router.post("/api/jobs", status_code=201, summary="Queue a job: content image, style images, settings",
             responses={201: ex.answer(ex.QUEUED), 422: ex.refusal(
                 "optimizer = 'adm' is invalid: choose one of adam, lbfgs (did you mean 'adam'?)",
                 "A setting, an image or a mask that cannot be used (400: config is not a JSON object)")})
async def submit(
    queue: Queue,
    limits: RequestLimits,
    budget: Budget,
    content: Annotated[UploadFile, File(description="The content image (decoded to check it; any name)")],
    style: Annotated[list[UploadFile], File(description="One or more style images: repeat the field")],
    config: Annotated[str, Form(description='Settings as a JSON object with StyleConfig\'s field names, e.g. '
                                            '{"preset": "preview", "size": 256, "style_weight": 30}')] = "{}",
    style_blend: Annotated[str | None, Form(description="Weights of the style images, e.g. 0.3,0.7")] = None,
    mask: Annotated[list[UploadFile] | None, File(description="Optional: where each style goes, one mask per "
                                                              "style image in their order (white: that style)")] = None,
    keep_mask: Annotated[UploadFile | None, File(description="Optional: where to keep the photo (white)")] = None,
) -> JSONResponse:
    """Returns the job's id (random, unguessable), its queue position, its URLs and ``estimate_s``, the seconds it
    is expected to take on this server (its calibration, measured once: the first job waits a few seconds) (201)."""
    if len(style) > limits.max_styles:
        raise HTTPException(422, f"{len(style)} style images: give at most {limits.max_styles}")
    cfg = parse_config(config, style_blend, len(style), queue.device, limits)
    masks = await read_masks(mask, keep_mask, len(style), limits)
    try:  # within the decode budget (a share per request, or 503); decoding and PNG encoding off the event loop
        job = await decoded(budget, content, style, limits, cfg, lambda c, s: queue.submit(
            c, s, cfg, masks, estimate_run(c, s, cfg.replace(device=queue.device))[0].seconds))
    except WriteError as e:  # the server's disk is full: Insufficient Storage, in one line without its paths
        raise HTTPException(507, str(e)) from None
    return JSONResponse(describe(queue, job), status_code=201, headers={"Location": f"/api/jobs/{job.id}"})


@router.get("/api/jobs", summary="Recent jobs, newest first (the gallery)",
            responses={200: ex.answer({"jobs": [ex.RUNNING, ex.DONE]})})
def list_jobs(queue: Queue, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    return {"jobs": [describe(queue, j) for j in queue.jobs(limit)]}


@router.get("/api/jobs/{job_id}", summary="A job's status, step, losses, position, timings and loss history",
            responses={200: ex.answer(ex.WITH_HISTORY), 404: ex.NO_SUCH_JOB})
def get_job(queue: Queue, job_id: str) -> dict[str, Any]:
    return describe(queue, find(queue, job_id), history=True)


@router.post("/api/jobs/{job_id}/cancel", status_code=202, summary="Cancel a job (queued: at once; running: after "
                                                                    "its current step, keeping the image so far)",
             responses={202: ex.answer(ex.RUNNING), 404: ex.NO_SUCH_JOB, 409: ex.refusal(
                 "the job has already ended (done); nothing to cancel", "The job had already ended")})
def cancel(queue: Queue, job_id: str) -> dict[str, Any]:
    job = find(queue, job_id)
    if not queue.cancel(job):
        raise HTTPException(409, f"the job has already ended ({job.status}); nothing to cancel")
    return describe(queue, job)


@router.delete("/api/jobs/{job_id}", status_code=204, response_class=Response,
               summary="Delete an ended job: its inputs, result and history (409 while queued or running)",
               responses={404: ex.NO_SUCH_JOB, 409: ex.refusal(
                   "the job is running: cancel it first (POST /api/jobs/{id}/cancel), then delete it",
                   "The job is queued or running")})
def delete(queue: Queue, job_id: str) -> Response:
    job = find(queue, job_id)
    try:
        deleted = queue.delete(job)
    except OutputError as e:  # the folder is not what the queue made (a link, say): left alone
        raise HTTPException(500, str(e)) from None
    if not deleted:
        raise HTTPException(409, f"the job is {job.status}: cancel it first (POST /api/jobs/{{id}}/cancel), "
                                 "then delete it")
    return Response(status_code=204)


@router.get("/api/jobs/{job_id}/image", summary="The final PNG (with its recipe), else the latest preview",
            response_class=Response, responses={200: {"content": {"image/png": {}}}})
async def image(queue: Queue, budget: Budget, job_id: str, download: bool = False,
                thumb: Annotated[int | None, Query(ge=16, le=1024, description="longest side")] = None,
                ) -> Response:
    job = find(queue, job_id)
    found = queue.image(job)
    if found is None:
        raise HTTPException(404, f"the job has no image yet ({job.status})")
    headers = {"Cache-Control": "no-cache" if isinstance(found, Path) else "no-store"}
    if download:
        headers["Content-Disposition"] = f'attachment; filename="{job.download_name}"'  # sanitised: no quotes
    if thumb is not None:  # a decode like an upload's: within the decode budget (a gallery asks for many at once)
        async with budget.hold(await run_in_threadpool(_thumbnail_cost, found)):
            data = await run_in_threadpool(_thumbnail, found, thumb)
        return Response(data, media_type="image/png", headers=headers)
    if isinstance(found, Path):
        return FileResponse(found, media_type="image/png", headers=headers)
    return Response(found, media_type="image/png", headers=headers)


@router.get("/api/jobs/{job_id}/inputs/{index}", summary="An input image: 0 is the content, 1... the styles",
            response_class=FileResponse, responses={200: {"content": {"image/png": {}}}})
def input_image(queue: Queue, job_id: str, index: int) -> FileResponse:
    job = find(queue, job_id)
    if not 0 <= index <= len(job.inputs["styles"]):
        raise HTTPException(404, f"input {index}: the job has inputs 0 to {len(job.inputs['styles'])}")
    path = job.input_path(index)  # that job's own stored inputs only: the index is checked, the folder is the queue's
    if not path.is_file():  # deleted meanwhile
        raise HTTPException(404, "the job's inputs are gone (deleted)")
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "max-age=86400"})


@router.get("/api/jobs/{job_id}/photo", summary="The photo at the final result's size, resized as the run did (the "
            "page's strength slider blends the two)", response_class=Response,
            responses={200: {"content": {"image/png": {}}}, 404: ex.NO_SUCH_JOB})
async def photo(queue: Queue, budget: Budget, job_id: str) -> Response:
    job = find(queue, job_id)
    found = queue.image(job)
    if not job.has_result or not isinstance(found, Path) or not job.input_path(0).is_file():
        raise HTTPException(404, f"the job has no final result ({job.status})")
    async with budget.hold(await run_in_threadpool(_photo_cost, found, job.input_path(0))):
        data = await run_in_threadpool(_photo_at_size, found, job.input_path(0))
    return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=86400"})


@router.get("/api/jobs/{job_id}/events", summary="Server-Sent Events: state, status, progress, preview, end",
            response_class=StreamingResponse, responses={200: {"content": {"text/event-stream": {}}}})
async def events(queue: Queue, job_id: str) -> StreamingResponse:
    """``state`` first (the whole job, with its loss history), then ``status`` (queued position, running),
    ``progress`` (one per step: step, total_steps, scale, scales, size, eta_s, losses), ``preview`` (a URL every
    few steps) and ``end`` (status, message, final image URL); the stream closes after ``end``."""
    job = find(queue, job_id)
    return StreamingResponse(_stream(queue, job), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def _stream(queue: JobQueue, job: Job) -> AsyncIterator[str]:
    snap = describe(queue, job, history=True)
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
        snap = describe(queue, job)
        for entry in queue.history_since(job, sent):
            sent += 1
            yield _sse("progress", {**entry, "total_steps": snap["total_steps"], "scales": snap["scales"],
                                    "size": snap["size"], "eta_s": snap["eta_s"]})
        if snap["preview_step"] != preview and snap["status"] == "running":
            preview = snap["preview_step"]
            yield _sse("preview", {"step": preview, "url": f"{snap['urls']['image']}?step={preview}"})
        if (snap["status"], snap["position"]) != status:
            status = (snap["status"], snap["position"])
            if snap["status"] in FINAL:
                yield _sse("end", snap)
                return
            yield _sse("status", {"status": status[0], "position": status[1], "message": snap["message"]})


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _thumbnail_cost(found: bytes | Path) -> int:
    """What making a thumbnail holds, in 4-byte pixels: the decoded PNG and its RGB copy."""
    with io.BytesIO(found) if isinstance(found, bytes) else open(found, "rb") as f:
        head = read_header(f)
    return 2 * head.width * head.height if head is not None else 0


def _photo_cost(result: Path, content: Path) -> int:
    """What making the photo at the result's size holds, in 4-byte pixels: the decoded photo, the resized one."""
    return _thumbnail_cost(content) + _thumbnail_cost(result)


def _photo_at_size(result: Path, content: Path) -> bytes:
    """The job's stored photo resized to the result as ``inputs.prepare`` resized it (Lanczos, exact size)."""
    with open(result, "rb") as f:
        head = read_header(f)
    if head is None:
        raise HTTPException(404, "the job's result cannot be read")
    im = resize_exact(load_image(content).image, head.height, head.width)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _thumbnail(found: bytes | Path, side: int) -> bytes:
    with Image.open(io.BytesIO(found) if isinstance(found, bytes) else found) as opened:
        im = opened.convert("RGB")
    im.thumbnail((side, side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()
