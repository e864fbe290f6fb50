"""The recipe in XMP (TIFF, WebP, JPEG): the packet written, and the packet found again in a file without decoding a
pixel, reading only the bytes each container's own structure points to (bounded), as ``recipe._recipe_chunk`` does
for PNG. The recipe is the text of one ``impasto:recipe`` element, JSON with every non-ASCII character escaped, so
reading it back needs no XML parser (and so expands no entities a stranger's file might declare): the element's
text is taken as it is, with the five predefined XML escapes undone.
"""

from __future__ import annotations

import os
import re
import struct
from typing import Any, BinaryIO
from xml.sax.saxutils import escape

from ..errors import ImageError

NAMESPACE = "http://ns.impasto.invalid/1.0/"  # .invalid: a name that is no one's address
MAX_XMP_BYTES = 4 * 2**20  # impasto's packets are a few KB
JPEG_XMP = b"http://ns.adobe.com/xap/1.0/\0"
_ELEMENT = re.compile(rb"<impasto:recipe>([^<]*)</impasto:recipe>")
_UNESCAPE = ((b"&lt;", b"<"), (b"&gt;", b">"), (b"&quot;", b'"'), (b"&apos;", b"'"), (b"&amp;", b"&"))


def packet(text: str) -> bytes:
    """An XMP packet holding ``text`` (the recipe's JSON) in ``impasto:recipe``."""
    body = escape(text.encode("ascii", "backslashreplace").decode("ascii"))
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:impasto="{NAMESPACE}">'
        f"<impasto:recipe>{body}</impasto:recipe>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    ).encode()


def recipe_in(xmp: bytes) -> bytes | None:
    """The recipe's JSON in an XMP packet, or None when the packet holds none."""
    m = _ELEMENT.search(xmp)
    if m is None:
        return None
    text = m.group(1)
    for code, char in _UNESCAPE:  # &amp; last, so that "&amp;lt;" stays "&lt;"
        text = text.replace(code, char)
    return text


def find_xmp(f: BinaryIO, head: bytes, name: Any) -> bytes | None:
    """The XMP packet of an open TIFF, WebP or JPEG (``head``: its first 12 bytes), None if it has none or is another
    format; an ImageError when the container is damaged where it points to the packet."""
    if head[:4] in (b"II*\0", b"MM\0*"):
        return _tiff(f, head, name)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp(f, name)
    if head[:2] == b"\xff\xd8":
        return _jpeg(f, name)
    return None


def _read(f: BinaryIO, at: int, n: int, name: Any) -> bytes:
    if n > MAX_XMP_BYTES:
        raise ImageError(f"{name}: its XMP metadata is over {MAX_XMP_BYTES // 2**20} MB; impasto's are a few KB, "
                         "so it was not written by impasto")
    f.seek(at)
    data = f.read(n)
    if len(data) < n:
        raise ImageError(f"{name}: a damaged image (its metadata runs past the end of the file); re-save it")
    return data


def _tiff(f: BinaryIO, head: bytes, name: Any) -> bytes | None:
    order = "<" if head[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", head[4:8])
    count_raw = _read(f, ifd, 2, name)
    (count,) = struct.unpack(order + "H", count_raw)
    entries = _read(f, ifd + 2, 12 * count, name)
    for i in range(count):
        tag, kind, n, value = struct.unpack(order + "HHII", entries[12 * i:12 * i + 12])
        if tag == 700 and kind in (1, 7):  # XMP, as BYTE or UNDEFINED
            return entries[12 * i + 8:12 * i + 8 + n] if n <= 4 else _read(f, value, n, name)
    return None


def _webp(f: BinaryIO, name: Any) -> bytes | None:
    f.seek(0, os.SEEK_END)
    end = f.tell()
    pos = 12
    while pos + 8 <= end:
        f.seek(pos)
        kind, size = struct.unpack("<4sI", f.read(8))
        if kind == b"XMP ":
            return _read(f, pos + 8, size, name)
        pos += 8 + size + (size & 1)
    return None


def _jpeg(f: BinaryIO, name: Any) -> bytes | None:
    pos = 2
    while True:
        f.seek(pos)
        marker = f.read(4)
        if len(marker) < 4 or marker[0] != 0xFF or marker[1] in (0xDA, 0xD9):  # scan data or the end: no more metadata
            return None
        (length,) = struct.unpack(">H", marker[2:])
        if marker[1] == 0xE1 and length >= 2 + len(JPEG_XMP):
            body = _read(f, pos + 4, length - 2, name)
            if body.startswith(JPEG_XMP):
                return body[len(JPEG_XMP):]
        pos += 2 + length
