"""The masks of a job's form (``mask``, one per style image in their order, and ``keep_mask``) and the endpoint that
serves them back (the gallery shows them beside a job's inputs). Storage is ``maskfiles``."""

from __future__ import annotations

from typing import Any

from . import MissingExtra
from .forms import Limits, decode, label
from .maskfiles import mask_names, mask_path
from .middleware import TooLarge

try:
    from fastapi import APIRouter, HTTPException, Request, UploadFile
    from fastapi.responses import FileResponse
    from starlette.concurrency import run_in_threadpool
except ModuleNotFoundError as e:  # the optional extra
    raise MissingExtra(f"impasto serve needs {e.name}: pip install 'impasto[web]'") from None

router = APIRouter()


async def _read(f: UploadFile, fallback: str, limits: Limits) -> tuple[bytes, str]:
    data = await f.read(limits.max_upload_bytes + 1)
    await f.close()
    if len(data) > limits.max_upload_bytes:
        raise TooLarge(limits.max_upload_bytes)
    return data, label(f.filename, fallback)


async def read_masks(mask: list[UploadFile] | None, keep: UploadFile | None, n_styles: int,
                     limits: Limits) -> dict[str, Any]:
    """The form's masks, decoded and checked (a 4xx naming the field otherwise) → ``JobQueue.submit``'s masks."""
    out: dict[str, Any] = {}
    if mask:
        if len(mask) != n_styles:
            raise HTTPException(422, f"mask: {len(mask)} mask{'s' if len(mask) != 1 else ''} for {n_styles} style "
                                     "image(s); send one per style image, in the same order (or none)")
        raw = [await _read(f, f"mask-{i + 1}.png", limits) for i, f in enumerate(mask)]
        out["masks"] = await run_in_threadpool(
            lambda: [decode(data, name, f"mask {i + 1}", limits) for i, (data, name) in enumerate(raw)])
        for i, m in enumerate(out["masks"]):
            if m.image.convert("L").getextrema()[1] == 0:
                raise HTTPException(422, f"mask {i + 1} is empty (all black): paint where style {i + 1} goes, "
                                         "or send no masks")
    if keep is not None:
        data, name = await _read(keep, "keep.png", limits)
        out["keep_mask"] = await run_in_threadpool(decode, data, name, "keep_mask", limits)
    return out


@router.get("/api/jobs/{job_id}/masks/{name}", summary="A job's mask: 1… one per style image, or keep",
            response_class=FileResponse, responses={200: {"content": {"image/png": {}}}})
def mask_image(request: Request, job_id: str, name: str) -> FileResponse:
    job = request.app.state.queue.get(job_id)
    if job is None:
        raise HTTPException(404, "no such job (ids come from POST /api/jobs)")
    names = mask_names(job.inputs)
    if name not in names:  # only names the job has: nothing from the request becomes a path otherwise
        raise HTTPException(404, f"mask {name!r}: the job has {', '.join(names) or 'no masks'}")
    path = mask_path(job.folder, name)
    if not path.is_file():
        raise HTTPException(404, "the job's masks are gone (deleted)")
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "max-age=86400"})
