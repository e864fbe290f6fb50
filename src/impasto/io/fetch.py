"""Fetching an image over http(s): a per-read timeout, an overall deadline and a size cap.

Only the bytes come back; decoding them is ``images.load_image``'s job. A text or HTML answer (an error page, a
gallery page instead of the picture) is refused here with a message that says so, rather than later as "not an image".
"""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request

from ..errors import ImageError

URL_TIMEOUT = 20.0
URL_MAX_BYTES = 50 * 1024 * 1024


def is_url(text: str) -> bool:
    """True for an http(s) address (the only schemes fetched; file:// and the rest are paths or refused)."""
    return text[:8].lower().startswith(("http://", "https://"))


def read_url(url: str, max_bytes: int | None = None, timeout: float | None = None) -> bytes:
    """Fetch an image over http(s): a per-read timeout, an overall deadline and a size cap (checked on the
    declared Content-Length first, then while reading, so a huge or endless answer is never held in memory)."""
    # Module globals read at call time, not bound as defaults: tests and callers may change them.
    max_bytes = URL_MAX_BYTES if max_bytes is None else max_bytes
    timeout = URL_TIMEOUT if timeout is None else timeout
    too_big = f"{url}: larger than {max_bytes / 2**20:.3g} MB; download it and resize it first"
    req = urllib.request.Request(url, headers={"User-Agent": "impasto"})
    deadline = time.monotonic() + 3 * timeout
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # http(s) only: checked by the caller
            ctype = resp.headers.get("Content-Type", "") or ""
            if ctype.lower().startswith(("text/", "application/json", "application/xhtml")):
                kind = ctype.split(";")[0].strip()
                raise ImageError(f"{url}: the server returned {kind}, not an image; use the image's own address")
            declared = resp.headers.get("Content-Length")
            if declared and declared.strip().isdigit() and int(declared) > max_bytes:
                raise ImageError(too_big)
            chunks, size = [], 0
            while True:
                chunk = resp.read(min(1 << 16, max_bytes + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > max_bytes:
                    raise ImageError(too_big)
                if time.monotonic() > deadline:
                    raise ImageError(f"{url}: the download took longer than {3 * timeout:g} s; download it yourself")
            data = b"".join(chunks)
    except ImageError:
        raise
    except urllib.error.HTTPError as e:
        e.close()
        raise ImageError(f"{url}: the server answered HTTP {e.code}; check the address") from None
    except (urllib.error.URLError, TimeoutError, OSError, ValueError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", None) or e or type(e).__name__
        raise ImageError(f"{url}: cannot be fetched ({reason}); check the address or download the file") from None
    if data[:512].lstrip().lower().startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        raise ImageError(f"{url}: the server returned a web page, not an image; use the image's own address")
    return data
