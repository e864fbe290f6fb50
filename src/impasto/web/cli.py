"""``impasto serve``: registered by ``impasto.cli``; imports FastAPI and uvicorn only when the command runs."""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .server import bind, host_names, is_loopback

LOOPBACK_NAMES = ["127.0.0.1", "localhost", "::1", "[::1]"]
__all__ = ["LOOPBACK_NAMES", "add_parser", "cmd_serve", "is_loopback"]


def _number(kind: type, low: float, high: float, what: str) -> Callable[[str], Any]:
    """An argparse type: a ``kind`` number from ``low`` to ``high``, else one line saying what is allowed."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"{text!r} is not a number; give {what}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"{text} is out of range; give {what}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its own messages
    return parse


def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="the web page and JSON API (http://127.0.0.1:8000; needs impasto[web])",
                       description="Serve a page to paint in the browser and a JSON API with a job queue. "
                                   "The API is documented at /docs (and /openapi.json).")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on [default: 127.0.0.1, this machine only; 0.0.0.0 opens it to the "
                        "network: there is no login]")
    p.add_argument("--port", type=_number(int, 0, 65535, "a port from 1 to 65535 (0: any free port)"), default=8000,
                   help="port; 0 picks a free one [default: 8000]")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps; one job runs at a time on it "
                                                    "[default: auto]")
    p.add_argument("--results", default="impasto-results", metavar="DIR",
                   help="folder for jobs' inputs, settings and results; kept across restarts "
                        "[default: impasto-results]")
    p.add_argument("--max-upload-mb", type=_number(float, 0.001, 2**20, "megabytes above 0, e.g. 32"), default=32,
                   help="largest request (all images) [default: 32]")
    p.add_argument("--max-pixels", type=_number(int, 64, 2**40, "pixels, at least 64, e.g. 25000000"),
                   default=25_000_000, help="largest input image [default: 25000000]")
    p.add_argument("--max-size", type=_number(int, 16, 16384, "a long side from 16 to 16384 pixels"), default=2048,
                   help="largest result (long side) [default: 2048]")
    p.add_argument("--decode-budget", type=_number(int, 64, 2**42, "pixels, e.g. 100000000"), metavar="PIXELS",
                   help="pixels all requests together may be decoding at once; a request that would go over waits "
                        "a few seconds, then gets 503 and Retry-After; uploaded bytes count a pixel per 4 [default: 4 x "
                        "--max-pixels, plus --max-upload-mb: one request of the largest images]")
    p.add_argument("--preview-every", type=_number(int, 1, 10**9, "a whole number of steps, 1 or more"), default=10,
                   metavar="N",
                   help="make a preview image every N steps [default: 10]")
    p.set_defaults(func=cmd_serve)


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
    from .server import ServeError, guarded_protocol

    budget = args.decode_budget or 0  # 0: the largest request (Limits)
    if budget and budget < args.max_pixels:
        raise ServeError(f"--decode-budget {budget} is below --max-pixels {args.max_pixels}: no image that size "
                         "could ever be decoded; raise it or lower --max-pixels")
    limits = Limits(max_upload_bytes=max(1, int(args.max_upload_mb * 2**20)), max_pixels=args.max_pixels,
                    max_size=args.max_size, decode_budget=budget)
    sock = bind(args.host, args.port)  # now: a busy port is one line, before anything starts
    bound, port = sock.getsockname()[:2]
    # Bound to loopback, only loopback Host headers (and the address it was given) are answered: a web page
    # elsewhere cannot reach the server through DNS rebinding.
    try:
        app = create_app(args.results, args.device, limits=limits, preview_every=args.preview_every,
                         allowed_hosts=host_names(args.host, bound, LOOPBACK_NAMES))
    except BaseException:
        sock.close()
        raise
    shown = f"[{args.host.strip('[]')}]" if ":" in args.host else args.host
    print(f"impasto: serving on http://{shown}:{port} (device {app.state.queue.device}, results in "
          f"{args.results}); API docs at /docs; Ctrl-C stops", file=sys.stderr, flush=True)
    queue = app.state.queue

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            # Event streams stay open while jobs run and uvicorn waits for open requests before it shuts the app
            # down: end the streams first, or Ctrl-C would wait for every watched job to finish.
            queue.end_streams()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, host=args.host, port=port, log_level="warning", ws="none",
                            http=guarded_protocol(), timeout_graceful_shutdown=5)
    try:
        Server(config).run(sockets=[sock])
    finally:
        sock.close()
    return 0
