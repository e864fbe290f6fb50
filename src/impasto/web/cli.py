"""``impasto serve``: registered by ``impasto.cli``; imports FastAPI and uvicorn only when the command runs."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import sys
from pathlib import Path
from typing import Any

LOOPBACK_NAMES = ["127.0.0.1", "localhost", "::1", "[::1]"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="the web page and JSON API (http://127.0.0.1:8000; needs impasto[web])",
                       description="Serve a page to paint in the browser and a JSON API with a job queue. "
                                   "The API is documented at /docs (and /openapi.json).")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on [default: 127.0.0.1, this machine only; 0.0.0.0 opens it to the "
                        "network: there is no login]")
    p.add_argument("--port", type=int, default=8000, help="port [default: 8000]")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps; one job runs at a time on it "
                                                    "[default: auto]")
    p.add_argument("--results", default="impasto-results", metavar="DIR",
                   help="folder for jobs' inputs, settings and results; kept across restarts "
                        "[default: impasto-results]")
    p.add_argument("--max-upload-mb", type=float, default=32, help="largest request (all images) [default: 32]")
    p.add_argument("--max-pixels", type=int, default=25_000_000, help="largest input image [default: 25000000]")
    p.add_argument("--max-size", type=int, default=2048, help="largest result (long side) [default: 2048]")
    p.add_argument("--preview-every", type=int, default=10, metavar="N",
                   help="make a preview image every N steps [default: 10]")
    p.set_defaults(func=cmd_serve)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve while holding the results folder's lock: a second server on the same folder would mark this one's
    running job failed and run its queue again, so it is refused, naming this one (pid, host, since when)."""
    from ..io.locks import lock_folder
    from . import require_web

    require_web()
    folder = Path(args.results)
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)  # if it cannot be made, create_app says why
    if not folder.is_dir():
        return _serve(args)
    with lock_folder(folder, "impasto serve"):
        return _serve(args)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import Limits, create_app

    limits = Limits(max_upload_bytes=int(args.max_upload_mb * 2**20), max_pixels=args.max_pixels,
                    max_size=args.max_size)
    # Bound to loopback, only loopback Host headers are answered: a web page elsewhere cannot reach the server
    # through DNS rebinding.
    hosts = LOOPBACK_NAMES if is_loopback(args.host) else None
    app = create_app(args.results, args.device, limits=limits, preview_every=args.preview_every,
                     allowed_hosts=hosts)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"impasto: serving on http://{shown}:{args.port} (device {app.state.queue.device}, results in "
          f"{args.results}); API docs at /docs; Ctrl-C stops", file=sys.stderr)
    queue = app.state.queue

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            # Event streams stay open while jobs run and uvicorn waits for open requests before it shuts the app
            # down: end the streams first, or Ctrl-C would wait for every watched job to finish.
            queue.end_streams()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", ws="none",
                            timeout_graceful_shutdown=5)
    Server(config).run()
    return 0
