"""PNG images of plotly figures through kaleido 1.x and a system Chrome/Chromium, one browser for many charts.

kaleido 1.x drives a real browser. Starting it costs seconds (2–6 s on a small CPU) and each chart
afterwards 0.15–0.3 s, so a ChartRenderer opens one browser and keeps it for every chart it is given:
one per brief, or one for the life of an app process. It runs kaleido's asyncio API on its own
event-loop thread, so it works the same from a script, from pytest and from Streamlit (which has a
loop of its own), and every call has a timeout: a hung browser costs a clear error, not a hang.

The browser is never downloaded (no kaleido.get_chrome / plotly_get_chrome): $BROWSER_PATH, else
chromium, chromium-browser, google-chrome… on PATH (Debian: apt-get install chromium). MathJax is
off: the charts use none, and loading it would try a CDN.

Public API
    ChartsUnavailable(SpecdecError)           no browser, or the browser failed: one line saying so
    find_browser() -> str | None
    ChartRenderer(browser=None)               context manager; .png(fig, width, height, scale) -> bytes,
                                              .pngs({name: fig}) -> {name: bytes}, .close()
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import threading
from concurrent.futures import TimeoutError as FutureTimeout

from specdec import config
from specdec.errors import SpecdecError

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
INSTALL_HINT = "install Chromium (Debian: apt-get install chromium) or set BROWSER_PATH"


class ChartsUnavailable(SpecdecError):
    """Chart images cannot be made here; the message is the one line to show."""


def find_browser() -> str | None:
    """The Chrome/Chromium executable to use, or None: $BROWSER_PATH if set, else the first on PATH."""
    env = os.environ.get(config.BROWSER_ENV_VAR)
    if env:
        return env if os.path.isfile(env) and os.access(env, os.X_OK) else None
    return next((p for p in map(shutil.which, BROWSER_NAMES) if p), None)


class ChartRenderer:
    """One headless browser rendering any number of figures to PNG. Thread-safe (calls are serialised).

        with ChartRenderer() as r:
            images = r.pngs(charts.figures(analysis))
    """

    def __init__(self, browser: str | None = None, timeout_s: float = config.CHART_TIMEOUT_S,
                 start_timeout_s: float = config.BROWSER_START_TIMEOUT_S):
        env = os.environ.get(config.BROWSER_ENV_VAR)
        self.browser = browser or find_browser()
        if not self.browser:
            where = f"BROWSER_PATH={env!r} is not an executable" if env else "no Chrome/Chromium found on PATH"
            raise ChartsUnavailable(f"chart images need a browser: {where}; {INSTALL_HINT}")
        self.timeout_s = timeout_s
        _quiet_browser_logs()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="chart-renderer", daemon=True)
        self._thread.start()
        self._kaleido = None
        try:
            self._kaleido = self._call(self._open(), start_timeout_s)
        except BaseException as exc:
            self._stop_loop()
            if isinstance(exc, ChartsUnavailable):
                raise
            raise ChartsUnavailable(f"the browser {self.browser} did not start ({_one_line(exc)}); {INSTALL_HINT}") from None

    async def _open(self):
        import kaleido  # imported here: importing it is slow and only chart export needs it

        k = kaleido.Kaleido(n=1, timeout=self.timeout_s, mathjax=False, path=self.browser)
        await k.open()
        return k

    def _call(self, coro, timeout: float):
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise ChartsUnavailable(f"the browser did not answer within {timeout:g} s") from None

    def png(self, fig, width: int = config.CHART_WIDTH_PX, height: int | None = None,
            scale: float = config.CHART_SCALE) -> bytes:
        """PNG bytes of one plotly figure (its own layout height unless height is given)."""
        if self._kaleido is None:
            raise ChartsUnavailable("the chart renderer is closed")
        height = height or fig.layout.height or config.CHART_HEIGHT_PX
        opts = {"format": "png", "width": width, "height": height, "scale": scale}
        with self._lock:
            try:
                return self._call(self._kaleido.calc_fig(fig, opts=opts), self.timeout_s + 5)
            except ChartsUnavailable:
                raise
            except Exception as exc:
                raise ChartsUnavailable(f"chart export failed: {_one_line(exc)}") from None

    def pngs(self, figs: dict, **opts) -> dict[str, bytes]:
        """{name: PNG bytes} for {name: figure}, in the same order, through the one browser."""
        return {name: self.png(fig, **opts) for name, fig in figs.items()}

    def close(self) -> None:
        """Close the browser and the loop thread; safe to call twice."""
        with self._lock:
            k, self._kaleido = self._kaleido, None
            if k is not None:
                try:
                    self._call(k.close(), 15)
                except Exception:  # a browser that died already has nothing left to close
                    pass
            self._stop_loop()

    def _stop_loop(self) -> None:
        if self._loop.is_running():
            try:  # cancel what the browser library left running (its watchdog) so nothing is destroyed pending
                asyncio.run_coroutine_threadsafe(_cancel_pending(), self._loop).result(5)
            except Exception:
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        if not self._loop.is_running() and not self._loop.is_closed():
            self._loop.close()

    def __enter__(self) -> "ChartRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


async def _cancel_pending() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _quiet_browser_logs() -> None:
    """choreographer and kaleido log warnings (e.g. "Browser is being closed by watchdog") to stderr; the
    renderer reports failures itself in one line. Only loggers nobody configured are quietened."""
    for name in ("choreographer", "kaleido", "logistro"):
        log = logging.getLogger(name)
        if log.level == logging.NOTSET:
            log.setLevel(logging.ERROR)


def _one_line(exc: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message (choreographer packs several sentences into args)."""
    first = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
    lines = first.strip().splitlines()
    text = lines[0] if lines else ""
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
