"""Connection guards of `mutransfer serve`: request headers and bodies must arrive in time, and
the number of open connections is capped. Values from ``sweeps/limits.py``
(``MUTRANSFER_HEADER_TIMEOUT_S``, ``MUTRANSFER_BODY_TIMEOUT_S``, ``MUTRANSFER_MAX_CONNECTIONS``).

* **Headers**: uvicorn times out idle keep-alive connections but not a request whose headers never
  finish (a slow-loris client holds a connection and a file descriptor for ever).
  :class:`TimedH11Protocol` arms a timer when a connection opens, and again when the first bytes of
  a next request arrive; if the headers are not complete when it fires, the server answers
  ``408 Request Timeout`` and closes the connection.
* **Body**: :class:`BodyTimeout` (ASGI middleware) gives each chunk of a request body
  ``body_timeout_s`` to arrive; beyond, the route's read raises :class:`BodyTimeoutError`, answered
  408 (``service/errors.py``). Once the body is complete, waits on the connection (e.g. an event
  stream listening for the client to leave) are not timed.
* **Connections**: uvicorn's ``limit_concurrency`` (503 for requests beyond it).
* **Dashboard pages**: :class:`PageGate` (ASGI middleware) lets at most ``PAGE_RENDERS`` page
  requests run at once; the others wait on the event loop, holding no worker thread. Rendering is
  CPU-bound Python: more threads at it would only share the GIL with the event loop, and delay
  ``/health`` and every API answer. `serve` also shortens the interpreter's switch interval
  (:data:`SWITCH_INTERVAL_S`) so the event loop gets the GIL back sooner from a rendering thread.
"""

from __future__ import annotations

import asyncio
import re

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from sweeps import limits as limits_table

_REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                    b"connection: close\r\ncontent-length: 38\r\n\r\nrequest headers not received in time\r\n")


def _env_limits():
    try:
        return limits_table.from_env()
    except ValueError:  # `serve` has already said which variable is bad; the defaults hold meanwhile
        return limits_table.Limits()


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's headers."""

    header_timeout_s: float | None = None  # None: MUTRANSFER_HEADER_TIMEOUT_S (read once per process)

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        if self._header_timer is None:
            if TimedH11Protocol.header_timeout_s is None:
                TimedH11Protocol.header_timeout_s = _env_limits().header_timeout_s
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._arm()  # part of a request's head has come, not all of it
        else:
            self._disarm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.logger.warning("request headers not complete after %.0f s; closing the connection",
                                self.header_timeout_s)
            self.transport.write(_REQUEST_TIMEOUT)
            self.transport.close()


class BodyTimeoutError(Exception):
    """A request body stopped arriving (answered 408)."""


class BodyTimeout:
    """ASGI middleware: each body chunk must arrive within ``timeout_s`` seconds."""

    def __init__(self, app, timeout_s: float):
        self.app, self.timeout_s = app, timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        body_done = False

        async def timed_receive():
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.timeout_s)
            except asyncio.TimeoutError:
                raise BodyTimeoutError(f"the request body stopped arriving (no data for {self.timeout_s:g} s; "
                                       "MUTRANSFER_BODY_TIMEOUT_S)") from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        await self.app(scope, timed_receive, send)


PAGE_RENDERS = 2  # dashboard page requests handled at once
SWITCH_INTERVAL_S = 0.001  # sys.setswitchinterval for `serve` (CPython's default is 0.005)
PAGE_PATH = re.compile(r"/|/compare|/sweeps/[^/]+/(contours|shift|diagnostics|table|runs/[^/]+)")


class PageGate:
    """ASGI middleware: at most ``limit`` dashboard-page requests in the app at once."""

    def __init__(self, app, limit: int = PAGE_RENDERS):
        self.app, self.limit = app, limit
        self._gate: asyncio.Semaphore | None = None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not PAGE_PATH.fullmatch(scope.get("path", "")):
            return await self.app(scope, receive, send)
        if self._gate is None:
            self._gate = asyncio.Semaphore(self.limit)
        async with self._gate:
            await self.app(scope, receive, send)
