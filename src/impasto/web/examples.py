"""Examples of the JSON API's answers, shown by ``/docs`` and ``/redoc`` (the routes' ``responses=``): a job as
``GET /api/jobs/{id}`` describes it, the list, the health check and the one-line refusals.

Without them ReDoc showed ``{}`` for every answer (the routes return plain dicts). tests/test_web.py checks that each
example has the keys of a real answer, so they cannot drift from what the server sends.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..config import StyleConfig

JOB_ID = "WDgC9oQauJwLj-GQB1fF2A"  # secrets.token_urlsafe(16), as the queue makes them
_BASE = f"/api/jobs/{JOB_ID}"
_URLS = {"self": _BASE, "events": f"{_BASE}/events", "image": f"{_BASE}/image", "cancel": f"{_BASE}/cancel",
         "download": f"{_BASE}/image?download=true", "inputs": [f"{_BASE}/inputs/0", f"{_BASE}/inputs/1"],
         "photo": f"{_BASE}/photo", "masks": [], "keep_mask": None}
_LOSSES = {"total": 7.412, "content": 0.3187, "style": 0.3547, "tv": 0.0, "temporal": 0.0}

RUNNING: dict[str, Any] = {
    "id": JOB_ID, "status": "running", "message": "", "position": 0, "step": 120, "total_steps": 240,
    "size": [256, 362], "scale": 2, "scales": 5, "eta_s": 61.5, "estimate_s": 98.2, "losses": _LOSSES, "created": 1765101600.125,
    "started": 1765101600.25, "finished": None, "elapsed": 38.9,
    "config": StyleConfig(device="cpu").to_dict(), "inputs": {"content": "photo.jpg", "styles": ["starry_night.jpg"]},
    "has_image": True, "has_result": False, "preview_step": 120, "download_name": f"photo-starry_night-{JOB_ID[:8]}.png",
    "urls": _URLS,
}
QUEUED = RUNNING | {"status": "queued", "step": 0, "total_steps": None, "size": None, "scale": None, "scales": None,
                    "eta_s": None, "losses": {}, "started": None, "elapsed": 0.0, "has_image": False,
                    "preview_step": 0}
DONE = RUNNING | {"status": "done", "position": None, "step": 240, "scale": 4, "size": [384, 512], "eta_s": None,
                  "finished": 1765101681.5, "elapsed": 81.4, "has_result": True, "preview_step": 240}
WITH_HISTORY = RUNNING | {"history": [{"step": 1, "scale": 0, "time": 0.41, "total": 19.58, "content": 0.0,
                                       "style": 0.979, "tv": 0.0, "temporal": 0.0},
                                      {"step": 2, "scale": 0, "time": 0.73, "total": 14.96, "content": 0.0239,
                                       "style": 0.7469, "tv": 0.0, "temporal": 0.0}]}
HEALTH = {"status": "ok", "impasto": __version__, "device": "cpu", "queued": 1, "running": JOB_ID}


def answer(example: Any, description: str = "") -> dict[str, Any]:
    """One status code's entry in a route's ``responses=``: a JSON example (and a description)."""
    entry: dict[str, Any] = {"content": {"application/json": {"example": example}}}
    return entry | ({"description": description} if description else {})


def refusal(detail: str, description: str) -> dict[str, Any]:
    """An error answer: FastAPI's ``{"detail": "..."}``, one line that names the problem and the fix."""
    return answer({"detail": detail}, description)


NO_SUCH_JOB = refusal("no such job (ids come from POST /api/jobs)", "No job with this id")
