"""``impasto serve``: a local web page and JSON API over the same engine (FastAPI + uvicorn, the ``web`` extra).

Importing this package imports nothing heavy; ``app`` imports FastAPI and says what to install when it is missing.
"""

from __future__ import annotations

from ..errors import ImpastoError


class MissingExtra(ImpastoError):
    """An optional dependency is not installed: the message says which ``pip install`` fixes it."""

    exit_code = 2


def require_web() -> None:
    """Fail with one clear line when FastAPI, uvicorn, python-multipart or fastapi-offline (the docs' assets) is
    missing."""
    import importlib.util

    missing = [m for m in ("fastapi", "uvicorn", "multipart", "fastapi_offline") if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingExtra(f"impasto serve needs {', '.join(missing)}: pip install 'impasto[web]'")
