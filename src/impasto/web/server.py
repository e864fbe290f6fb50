"""Serving the app with uvicorn: the socket is bound first, and connections that are slow to send a request are dropped.

``bind`` opens the listening socket before anything is printed, so a busy port or an address this machine does not
have is one line (exit 2) rather than a log and a traceback. ``GuardedH11`` is uvicorn's h11 protocol with two
deadlines uvicorn does not have: a request's headers must arrive within ``HEADER_TIMEOUT_S`` of its first byte (or
of the connection), and a body that stops arriving for ``BODY_IDLE_S`` ends the connection. Without them a client
that opens connections and sends a byte now and then ("slowloris") holds each one for as long as it likes.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

from ..errors import ImpastoError

HEADER_TIMEOUT_S = 5.0  # from a request's first byte (or the connection's start) to the end of its headers
BODY_IDLE_S = 30.0  # the longest pause inside a request body (uploads over a slow network are still fine)
_TIMEOUT_BODY = b"the request's headers did not arrive in time\n"
_TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
                     b"content-length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\n\r\n" + _TIMEOUT_BODY)


class ServeError(ImpastoError):
    """``impasto serve`` cannot listen where it was asked to (a busy port, an address this machine does not have)."""

    exit_code = 2


def bind(host: str, port: int) -> socket.socket:
    """A listening socket for ``host``:``port`` (0 picks a free port), or a ServeError that says why not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as e:
        raise ServeError(f"--host {host}: not an address or a name this machine can resolve "
                         f"({getattr(e, 'strerror', None) or e}); use 127.0.0.1, ::1 or 0.0.0.0") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)  # connections queue from now on, while the app is still being built
    except OSError as e:
        sock.close()
        hint = "choose another --port" if e.errno == 98 else "use an address of this machine (--host)"
        raise ServeError(f"cannot listen on {host} port {port} ({e.strerror or e}); {hint}") from None
    sock.set_inheritable(True)
    return sock


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_names(host: str, bound: str, loopback_names: list[str]) -> list[str] | None:
    """The Host header values a server bound to ``bound`` (asked for as ``host``) answers; None: any (it is open to
    the network anyway). A loopback server answers loopback names and the address it was given (127.0.0.2, ::1),
    so that a page elsewhere cannot reach it through DNS rebinding."""
    if not (is_loopback(host) or is_loopback(bound)):
        return None
    names = list(loopback_names)
    for name in (host.strip("[]"), bound):
        for form in (name, f"[{name}]" if ":" in name else name):
            if form.lower() not in names:
                names.append(form.lower())
    return names


def guarded_protocol(header_timeout: float = HEADER_TIMEOUT_S, body_idle: float = BODY_IDLE_S) -> type:
    """uvicorn's h11 protocol class with the request deadlines described above."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11(H11Protocol):  # type: ignore[misc]
        _deadline: asyncio.TimerHandle | None = None
        _partial = False  # bytes of a request's headers have arrived

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm(header_timeout)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            state = self.conn.their_state
            if state is h11.IDLE:  # inside a request's headers: one deadline from the first byte, not reset
                self._partial = self._partial or bool(data)
                if self._deadline is None:
                    self._arm(header_timeout)
            elif state is h11.SEND_BODY:  # inside its body: a deadline for each pause
                self._partial = False
                self._arm(body_idle)
            else:
                self._partial = False
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self, seconds: float) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(seconds, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            state = self.conn.their_state
            if state is h11.SEND_BODY and self.flow.read_paused:  # the app has not read what came: not the client
                self._arm(body_idle)
                return
            if state not in (h11.IDLE, h11.SEND_BODY):  # the request is complete: the app is answering it
                return
            if state is h11.IDLE and self._partial:
                self.transport.write(_TIMEOUT_RESPONSE)
            self.transport.close()

    return GuardedH11
