"""A small Chrome DevTools Protocol client: headless Chromium driven over one websocket (aiohttp), no new dependency.

Only what the page test needs: navigate, evaluate JavaScript (awaiting promises), type text, set the viewport, take
screenshots and record the requests a page sends. Calls are synchronous for the test; each runs the client's own
event loop until its answer arrives (events in between are read, and kept only while requests are recorded), always
within a deadline.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx

__all__ = ["CHROMIUM", "CdpError", "Chromium", "chromium_path"]

CHROMIUM = "/usr/bin/chromium"
INSTALL_HINT = ("headless Chromium is needed for the browser test: install Debian's package with "
                "`apt-get install chromium fonts-noto-color-emoji` (.ci/run does it when it is missing), "
                "or point CHROMIUM at a Chromium/Chrome binary")


class CdpError(RuntimeError):
    """Chromium could not be started, or a DevTools call failed or timed out."""


def chromium_path() -> str:
    """The Chromium binary to drive (CHROMIUM overrides /usr/bin/chromium); CdpError with the install hint if absent."""
    candidate = os.environ.get("CHROMIUM") or shutil.which("chromium") or CHROMIUM
    if not (os.path.isfile(candidate) and os.access(candidate, os.X_OK)):
        raise CdpError(f"no Chromium at {candidate}: {INSTALL_HINT}")
    return candidate


class Chromium:
    """One headless Chromium process with one page, driven over the DevTools protocol; a context manager."""

    def __init__(self, binary: str | None = None, *, width: int = 1400, height: int = 1000,
                 start_timeout: float = 30.0) -> None:
        self.binary = binary or chromium_path()
        self.width, self.height = width, height
        self.start_timeout = start_timeout
        self._profile = Path(tempfile.mkdtemp(prefix="mm-chromium-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._loop = asyncio.new_event_loop()
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._requests: list[str] | None = None  # URLs of the requests sent while recording

    def __enter__(self) -> Chromium:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Launch Chromium in a process group of its own and connect to its first page."""
        argv = [self.binary, "--headless=new", "--remote-debugging-port=0", f"--user-data-dir={self._profile}",
                "--no-sandbox", f"--window-size={self.width},{self.height}", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--mute-audio", "--hide-scrollbars",
                "--disable-dev-shm-usage", "--proxy-server=direct://", "--proxy-bypass-list=*", "about:blank"]
        log = open(self._profile / "chromium.log", "wb")  # noqa: SIM115 - the child keeps it
        try:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        finally:
            log.close()
        port_file = self._profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.start_timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            if self._proc.poll() is not None:
                raise CdpError(f"Chromium exited with code {self._proc.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise CdpError(f"Chromium wrote no DevToolsActivePort in {self.start_timeout:.0f} s: {self.log_tail()}")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", trust_env=False, timeout=10).json()
        pages = [t for t in targets if t.get("type") == "page"]
        if not pages:
            raise CdpError(f"Chromium has no page target: {targets}")
        self._loop.run_until_complete(self._connect(pages[0]["webSocketDebuggerUrl"]))
        self.call("Page.enable")
        self.call("Runtime.enable")

    async def _connect(self, url: str) -> None:
        self._http = aiohttp.ClientSession(trust_env=False)
        self._ws = await self._http.ws_connect(url, max_msg_size=0, timeout=aiohttp.ClientWSTimeout(ws_close=5))

    def log_tail(self, chars: int = 2000) -> str:
        """The end of Chromium's own output (for error messages)."""
        path = self._profile / "chromium.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    async def _call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        assert self._ws is not None, "Chromium is not started"
        call_id = next(self._ids)
        await self._ws.send_str(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = await self._ws.receive()
            if message.type != aiohttp.WSMsgType.TEXT:
                raise CdpError(f"DevTools connection ended during {method}: {message.type.name}")
            answer = json.loads(message.data)
            if answer.get("method") == "Network.requestWillBeSent" and self._requests is not None:
                self._requests.append(answer["params"]["request"]["url"])
            if answer.get("id") != call_id:
                continue  # an event, or the answer of an earlier call that timed out
            if "error" in answer:
                raise CdpError(f"{method} failed: {answer['error']}")
            result: dict[str, Any] = answer.get("result", {})
            return result

    def call(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result (CdpError on an error answer or after timeout s)."""
        try:
            return self._loop.run_until_complete(asyncio.wait_for(self._call(method, params), timeout))
        except TimeoutError as exc:
            raise CdpError(f"{method} got no answer in {timeout:g} s") from exc

    def evaluate(self, expression: str, timeout: float = 30.0) -> Any:
        """The value of a JavaScript expression in the page (a promise is awaited); CdpError if it throws."""
        result = self.call("Runtime.evaluate", timeout=timeout, expression=expression, awaitPromise=True,
                           returnByValue=True, userGesture=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CdpError(f"JavaScript threw: {text}")
        return result.get("result", {}).get("value")

    def navigate(self, url: str, timeout: float = 30.0) -> None:
        """Load url and wait until its document has loaded."""
        answer = self.call("Page.navigate", timeout=timeout, url=url)
        if answer.get("errorText"):
            raise CdpError(f"navigation to {url} failed: {answer['errorText']}")
        deadline = time.monotonic() + timeout
        while self.evaluate("document.readyState") != "complete":
            if time.monotonic() > deadline:
                raise CdpError(f"{url} did not finish loading in {timeout:g} s")
            time.sleep(0.05)

    @contextlib.contextmanager
    def recording_requests(self) -> Iterator[list[str]]:
        """Within the block, the URL of every request the page sends (documents, scripts, fetches, images...),
        appended as the browser reports it, so read the list after a call that waited for the page."""
        requests: list[str] = []
        self._requests = requests
        self.call("Network.enable")
        try:
            yield requests
        finally:
            self.call("Network.disable")
            self._requests = None

    def insert_text(self, text: str) -> None:
        """Type text into the focused element as a user (or an IME) would."""
        self.call("Input.insertText", text=text)

    def screenshot(self, path: Path, height: int | None = None) -> Path:
        """Save a PNG of the page; with height, the viewport is made that tall for the shot.

        A page that scrolls inside an element (Streamlit's main block does) is beyond what captureBeyondViewport
        reaches, and that option's own resizing moves such a layout mid-shot; a taller viewport shows it all.
        """
        taller = height is not None
        if taller:
            self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=height, deviceScaleFactor=1,
                      mobile=False)
            time.sleep(0.3)  # let the page lay out (and charts redraw) at the new size
        try:
            shot = self.call("Page.captureScreenshot", timeout=60.0, format="png", captureBeyondViewport=not taller)
        finally:
            if taller:
                self.call("Emulation.clearDeviceMetricsOverride")
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        """Close the browser, kill its process group, remove its profile."""
        try:
            if self._ws is not None and not self._ws.closed:
                with contextlib.suppress(CdpError):  # the connection may close as the browser goes
                    self.call("Browser.close", timeout=5)
                self._loop.run_until_complete(self._ws.close())
            if self._http is not None:
                self._loop.run_until_complete(self._http.close())
        finally:
            if self._proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(timeout=5)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._proc.pid, signal.SIGKILL)  # renderers and helpers are in its group
                if self._proc.poll() is None:
                    self._proc.wait(timeout=5)
            self._loop.close()
            shutil.rmtree(self._profile, ignore_errors=True)
