"""The API's docs pages (``/docs``: Swagger UI, ``/redoc``: ReDoc) served from this machine, not from a CDN.

FastAPI's default pages load Swagger UI and ReDoc from a CDN, so offline ``/docs`` is blank. This follows FastAPI's
documented way of self-hosting them (``docs_url=None``, then ``get_swagger_ui_html`` with local ``swagger_js_url``
and ``swagger_css_url``); the assets come from the ``fastapi-offline`` wheel (Swagger UI 5, which reads the OpenAPI
3.1 that FastAPI writes; ``swagger-ui-bundle`` ships Swagger UI 4, which refuses 3.1: "does not specify a valid
version field"). Only its files are used, not its ``FastAPIOffline`` app.

ReDoc's sidebar draws Redocly's logo from their CDN (an ``<img>`` in its code, with no option to turn it off): the
script is served with that address replaced by an empty ``data:`` image, which ReDoc's own fallback for a logo that
fails to load drops, and ``/redoc`` allows images from this server only (its Content-Security-Policy).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from . import MissingExtra

try:
    from fastapi import FastAPI
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
    from fastapi.responses import HTMLResponse, Response
    from fastapi.staticfiles import StaticFiles
except ModuleNotFoundError as e:  # the optional extra
    raise MissingExtra(f"impasto serve needs {e.name}: pip install 'impasto[web]'") from None

ASSETS_URL = "/docs-assets"
REDOC_URL = "/docs-redoc.js"  # ReDoc's script without its CDN logo (outside ASSETS_URL: the mount would shadow it)
REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"


def assets_dir() -> Path:
    """The folder holding swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js and favicon.png."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtra("impasto serve needs fastapi_offline (the docs' assets): pip install 'impasto[web]'")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@functools.cache
def redoc_script() -> bytes:
    """redoc.standalone.js with its one image from elsewhere, Redocly's logo, replaced by ``data:,`` (no image: the
    logo's onError hides it)."""
    return (assets_dir() / "redoc.standalone.js").read_bytes().replace(REDOC_LOGO, b"data:,")


def install(app: FastAPI) -> None:
    """Serve ``/docs``, its OAuth2 redirect and ``/redoc`` from local files (create the app with ``docs_url=None,
    redoc_url=None``)."""
    app.mount(ASSETS_URL, StaticFiles(directory=assets_dir()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=openapi_url, title=f"{app.title} API",
                                   swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
                                   swagger_favicon_url=f"{ASSETS_URL}/favicon.png", oauth2_redirect_url=redirect_url)

    if redirect_url:
        @app.get(redirect_url, include_in_schema=False)
        def swagger_ui_redirect() -> HTMLResponse:
            return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        page = get_redoc_html(openapi_url=openapi_url, title=f"{app.title} API", redoc_js_url=REDOC_URL,
                              redoc_favicon_url=f"{ASSETS_URL}/favicon.png", with_google_fonts=False)
        page.headers["Content-Security-Policy"] = "img-src 'self' data:"  # nothing shown from elsewhere
        return page

    @app.get(REDOC_URL, include_in_schema=False)
    def redoc_js() -> Response:
        return Response(redoc_script(), media_type="text/javascript; charset=utf-8",
                        headers={"Cache-Control": "public, max-age=86400"})
