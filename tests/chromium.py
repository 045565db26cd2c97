"""A small driver for Debian's headless Chromium over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: commands on fd 3, replies on fd 4, NUL-terminated JSON), with no
dependency beyond the standard library and no network port. Used by the browser tests, the runs
table benchmark and the screenshot script.

    with Chromium(tmp_dir) as browser:
        page = browser.open("http://127.0.0.1:8000/")
        page.wait_for("document.querySelector('#sweeps')")
        page.click("a[data-view=table]")
        page.screenshot("index.png")
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BASH = shutil.which("bash") or "/bin/bash"  # (POSIX sh only redirects single-digit descriptors)
# No background traffic: tests and benchmarks talk to loopback only, and no host name resolves (a page
# that loads anything from a CDN or any other host sees it fail, as it would offline).
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")


class CDPError(RuntimeError):
    pass


class JSError(CDPError):
    """The page's JavaScript threw (as opposed to a protocol error, e.g. a value that cannot be
    returned by value)."""


def _above_4(fd: int) -> int:
    """The same pipe end on a descriptor >= 10, so moving it to 3 or 4 never clobbers another."""
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return new


class Chromium:
    """One headless Chromium with a fresh profile in ``workdir``; ``downloads`` is where exported
    files land."""

    def __init__(self, workdir: str | os.PathLike, *, timeout: float = 60.0):
        if CHROMIUM is None:
            raise RuntimeError("chromium is not installed (make test installs Debian's chromium)")
        self.workdir = Path(workdir)
        self.downloads = self.workdir / "downloads"
        self.downloads.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        cmd_r, self._cmd_w = os.pipe()
        self._out_r, out_w = os.pipe()
        cmd_r, out_w = _above_4(cmd_r), _above_4(out_w)
        # bash moves the pipe ends to fds 3 and 4 and execs chromium (no Python code runs in
        # the child, so this is safe from a multithreaded parent such as one that imported JAX).
        redirect = f'exec "$0" "$@" 3<&{cmd_r} 4>&{out_w} {cmd_r}<&- {out_w}>&-'
        self.proc = subprocess.Popen(
            [BASH, "-c", redirect, CHROMIUM, *FLAGS, "--remote-debugging-pipe",
             f"--user-data-dir={self.workdir / 'profile'}", "about:blank"], pass_fds=(cmd_r, out_w),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(cmd_r)
        os.close(out_w)
        self._id = 0
        self._buf = b""
        self.events: list[dict] = []
        self.send("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(self.downloads)})

    # -- protocol -------------------------------------------------------------------------
    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply from chromium")
            ready, _, _ = select.select([self._out_r], [], [], left)
            if ready:
                chunk = os.read(self._out_r, 1 << 20)
                if not chunk:
                    raise CDPError("chromium closed the pipe (crashed?)")
                self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float | None = None) -> dict:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise CDPError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def next_event(self, session: str, deadline: float) -> dict:
        """The oldest event of ``session`` not consumed yet (waiting for one until ``deadline``)."""
        while True:
            for k, ev in enumerate(self.events):
                if ev.get("sessionId") == session and "method" in ev:
                    return self.events.pop(k)
            self.events.append(self._read_message(deadline))

    # -- pages ----------------------------------------------------------------------------
    def open(self, url: str, *, width: int = 1400, height: int = 1000) -> "Page":
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        for domain in ("Page.enable", "Runtime.enable"):
            self.send(domain, session=session)
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
        page.goto(url)
        return page

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._cmd_w, self._out_r):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Page:
    def __init__(self, browser: Chromium, session: str):
        self.browser, self.session = browser, session

    def send(self, method: str, params: dict | None = None, timeout: float | None = None) -> dict:
        return self.browser.send(method, params, self.session, timeout)

    def _forget_events(self) -> None:
        self.browser.events = [e for e in self.browser.events if e.get("sessionId") != self.session]

    def wait_loaded(self, timeout: float | None = None) -> None:
        """Until the main frame has navigated to a new document and that document fired 'load'."""
        deadline = time.monotonic() + (timeout or self.browser.timeout)
        navigated = False
        while True:
            ev = self.browser.next_event(self.session, deadline)
            if ev["method"] == "Page.frameNavigated" and not ev["params"]["frame"].get("parentId"):
                navigated = ev["params"]["frame"].get("url") != "about:blank"
            elif ev["method"] == "Page.loadEventFired" and navigated:
                return

    def goto(self, url: str, timeout: float | None = None) -> None:
        self._forget_events()
        self.send("Page.navigate", {"url": url})
        self.wait_loaded(timeout)

    def eval(self, expression: str, timeout: float | None = None) -> Any:
        """The value of a JS expression (promises awaited); a JS exception raises CDPError."""
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True},
                      timeout)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise JSError(f"{expression[:80]!r}: {d.get('exception', {}).get('description') or d.get('text')}")
        return r.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 20.0, interval: float = 0.05) -> bool:
        """Poll until ``expression`` is truthy in the page (a JS exception counts as not yet).

        The truth test runs in the page (``!!(expression)``) so only a boolean crosses the protocol:
        a DOM node that a framework decorated with circular properties (React's ``__reactFiber$…``
        on Swagger UI's nodes) cannot be returned by value, and that protocol error must not read
        as "not there yet"."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                v = self.eval(f"!!({expression})")
            except JSError:
                v = False
            if v:
                return True
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {expression!r}")
            time.sleep(interval)

    def click(self, selector: str) -> None:
        """A real mouse click at the centre of the element (scrolled into view)."""
        box = self.eval(f"""(() => {{ const el = document.querySelector({json.dumps(selector)});
            if (!el) return null; el.scrollIntoView({{block: 'center'}});
            const r = el.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
        if not box:
            raise CDPError(f"no element matches {selector!r}")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1], "button": "left",
                                                   "clickCount": 1})

    def click_and_wait_load(self, selector: str, timeout: float | None = None) -> None:
        self._forget_events()
        self.click(selector)
        self.wait_loaded(timeout)

    def type(self, selector: str, text: str, *, clear: bool = True) -> None:
        """Focus the element and type ``text`` (input events as from a keyboard)."""
        self.eval(f"""(() => {{ const el = document.querySelector({json.dumps(selector)}); el.focus();
            {'el.value = "";' if clear else ''} }})()""")
        self.send("Input.insertText", {"text": text})

    def screenshot(self, path: str | os.PathLike, *, full_page: bool = False, selector: str | None = None) -> Path:
        """A PNG of the viewport, the whole page, or the ``selector``'s element (the first match)."""
        params: dict[str, Any] = {"format": "png"}
        if selector:
            box = self.eval(f"""(() => {{ const el = document.querySelector({json.dumps(selector)});
                if (!el) return null; const r = el.getBoundingClientRect();
                return [r.left + window.scrollX, r.top + window.scrollY, r.width, r.height]; }})()""")
            if not box:
                raise CDPError(f"no element matches {selector!r}")
            params.update(captureBeyondViewport=True,
                          clip={"x": box[0], "y": box[1], "width": box[2], "height": box[3], "scale": 1})
        elif full_page:
            w, h = self.eval("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            params.update(captureBeyondViewport=True, clip={"x": 0, "y": 0, "width": w, "height": h, "scale": 1})
        data = self.send("Page.captureScreenshot", params)["data"]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path
