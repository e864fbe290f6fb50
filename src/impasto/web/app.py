"""The FastAPI app: ``create_app`` assembles the queue, the ASGI layers, the routes and the page's static files.

``create_app(results_dir, device, limits=...)`` builds it; ``impasto serve`` runs it under uvicorn. What each part
does lives beside it: ``routes`` (the endpoints and the event stream), ``middleware`` (the body cap, the origin and
host checks), ``forms`` (a request's images and settings, and the ``Limits`` they are held to), ``jobs`` (the queue),
``docs`` (``/docs`` and ``/redoc`` from local files).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from .. import __version__
from ..api import resolve_device
from . import MissingExtra, docs, maskroutes, middleware, routes
from .budget import DecodeBudget
from .forms import Limits
from .jobs import JobQueue

try:
    from fastapi import FastAPI
    from fastapi.staticfiles import StaticFiles
    from starlette.concurrency import run_in_threadpool
except ModuleNotFoundError as e:  # the optional extra
    raise MissingExtra(f"impasto serve needs {e.name}: pip install 'impasto[web]'") from None

__all__ = ["Limits", "create_app"]

DESCRIPTION = "Neural style transfer (Gatys et al.) on VGG19: queue jobs, watch them, fetch results."


def create_app(results_dir: str | Path, device: str = "auto", *, limits: Limits | None = None,
               preview_every: int = 10, allowed_hosts: list[str] | None = None, start_worker: bool = True) -> FastAPI:
    """The web app. ``allowed_hosts`` (e.g. loopback names) guards against DNS rebinding; None allows any."""
    limits = limits or Limits()
    dev = str(resolve_device(device))  # an unavailable device is an error now, not at the first job
    queue = JobQueue(results_dir, dev, preview_every=preview_every)
    app = FastAPI(title="impasto", version=__version__, description=DESCRIPTION,
                  lifespan=_lifespan(queue, start_worker), docs_url=None, redoc_url=None)  # docs: served offline
    app.state.queue = queue
    app.state.limits = limits
    app.state.decode_budget = DecodeBudget(limits.decode_budget)  # pixels being decoded at once, all requests
    middleware.install(app, max_upload_bytes=limits.max_upload_bytes, allowed_hosts=allowed_hosts)
    app.include_router(routes.router)
    app.include_router(maskroutes.router)  # a job's masks
    docs.install(app)
    app.mount("/static", StaticFiles(directory=routes.STATIC), name="static")
    return app


def _lifespan(queue: JobQueue, start_worker: bool) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The worker runs while the app is served; stopping the app cancels the running job after its step."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if start_worker:
            queue.start()
        yield
        await run_in_threadpool(queue.close)

    return lifespan
