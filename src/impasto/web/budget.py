"""The decode budget: how many pixels all requests together may be decoding at once (``--decode-budget``).

Each job submission declares, from its images' headers, the pixels it will decode (plus its uploaded bytes, a pixel
per 4 bytes: what holding them costs), and waits for that much of the budget before reading or decoding anything.
Waiters are served in the order they came; one that has waited ``WAIT_S`` gets 503 with Retry-After. Without it,
eight requests of four small PNGs that each declare 5000x5000 pixels took the server from 245 MB to 4.8 GB; with it,
what the server holds for decoding is bounded by the budget, however many requests come at once.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import ctypes.util
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from . import MissingExtra

try:
    from fastapi import HTTPException
except ModuleNotFoundError as e:  # the optional extra
    raise MissingExtra(f"impasto serve needs {e.name}: pip install 'impasto[web]'") from None

WAIT_S = 10.0  # how long a submission may wait for its share before it is told to come back
RETRY_AFTER_S = 5
POLL_S = 0.02


# What a decoder holds per declared pixel, in 4-byte pixels (Pillow keeps RGB as 4 bytes), as measured on 5000x5000
# images: RGB PNG, TIFF, JPEG 1 (JPEG decodes at reduced scale, and less); RGBA is premultiplied before it is reduced
# (a second copy); palette, 1-bit and grey images become RGB before they can be reduced; 16-bit ones become 32-bit;
# WebP's decoder keeps its canvas and a copy of the frame as well as the image.
_WEIGHTS = {"RGBA": 2.0, "LA": 2.0, "PA": 2.0, "P": 1.5, "1": 1.5, "L": 1.5, "I;16": 1.5, "I;16B": 1.5, "I;16L": 1.5}
_FORMAT_WEIGHTS = {"WEBP": 4.0}


def weight(image_format: str, mode: str) -> float:
    """The 4-byte pixels decoding holds per declared pixel of an image of this format and mode (see above)."""
    return max(_FORMAT_WEIGHTS.get(image_format, 1.0), _WEIGHTS.get(mode, 1.0))


class DecodeBudget:
    """A count of pixels shared by every request; ``hold(n)`` waits (in order) until ``n`` fit, then holds them."""

    def __init__(self, total: int, wait_s: float = WAIT_S) -> None:
        self.total, self.wait_s = int(total), wait_s
        self.in_use = 0
        self.peak = 0  # the most held at once (tests and /api/health read it)
        self._lock = threading.Lock()  # plain: the budget may outlive an event loop (TestClient makes one per use)
        self._waiting: collections.deque[object] = collections.deque()

    @asynccontextmanager
    async def hold(self, pixels: int) -> AsyncIterator[None]:
        """Wait for ``pixels`` of the budget and hold them; a request that costs more than the whole budget (an
        allowed one can: a WebP decoder holds four times its pixels) waits until nothing else decodes, then runs
        alone."""
        pixels = min(max(0, int(pixels)), self.total)
        await self._acquire(pixels)
        try:
            yield
        finally:
            with self._lock:
                self.in_use -= pixels
            _give_back_memory()

    async def _acquire(self, pixels: int) -> None:
        ticket = object()
        deadline = time.monotonic() + self.wait_s
        with self._lock:
            self._waiting.append(ticket)
        try:
            while True:
                with self._lock:
                    if self._waiting[0] is ticket and self.in_use + pixels <= self.total:
                        self._waiting.popleft()
                        self.in_use += pixels
                        self.peak = max(self.peak, self.in_use)
                        return
                if time.monotonic() > deadline:
                    raise HTTPException(503, f"the server is busy decoding other images (its decode budget of "
                                             f"{self.total:,} pixels is in use); try again in {RETRY_AFTER_S} s",
                                        headers={"Retry-After": str(RETRY_AFTER_S)})
                await asyncio.sleep(POLL_S)
        except BaseException:
            with self._lock:
                if ticket in self._waiting:
                    self._waiting.remove(ticket)
            raise


def _malloc_trim() -> object | None:
    """glibc's ``malloc_trim``, or None elsewhere. Pillow decodes in 16 MB blocks that glibc keeps in each thread's
    arena once freed; trimming hands the pages back, so the process's size follows the budget, not its history."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def _give_back_memory() -> None:
    if _TRIM is not None:
        _TRIM(0)  # type: ignore[operator]
