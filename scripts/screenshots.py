"""Screenshots of every page of the app in a real headless browser (Debian chromium + Playwright).

    python scripts/screenshots.py [--out /tmp/specdec-shots] [--tiny-run]

Starts `streamlit run app.py` on 127.0.0.1 (a free port) with a throwaway run store, opens each page
and saves PNGs. --tiny-run also measures a real run with two tiny random models (tests/tiny.py) so the
Run page shows a finished run. Never downloads a browser: it uses /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 1000}
EXPLORE_TABS = ("Draft length γ", "Methods", "Where it pays off", "Categories", "Prompts", "Draft → verify cycle", "More charts")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(store_path: Path, timeout_s: float = 90.0):
    """`streamlit run app.py` on a free local port; yields the base URL, stops the server after."""
    port = free_port()
    env = {**os.environ, "SPECDEC_STORE": str(store_path), "PYTHONUNBUFFERED": "1"}
    log = open(Path(store_path).parent / "streamlit.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start; see {log.name}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def settle(page, quiet_s: float = 0.8, timeout_s: float = 60.0) -> None:
    """Wait until the script has finished running (the "Running…" widget gone for quiet_s)."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_s * 1000)
    deadline = time.monotonic() + timeout_s
    quiet_since = None
    while time.monotonic() < deadline:
        running = page.locator('[data-testid="stStatusWidget"]').count() > 0 and \
            page.locator('[data-testid="stStatusWidget"]').first.is_visible()
        if running:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return
        time.sleep(0.1)


def goto(page, url: str, title: str) -> None:
    """Open a page through the sidebar navigation (keeps the session) and wait for it."""
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.wait_for_url(f"{url}/**")
    settle(page)


def shoot(page, path: Path) -> Path:
    """A screenshot of the whole scrolled page (Streamlit scrolls its main block, not the window)."""
    height = page.evaluate("""() => {
        const main = document.querySelector('[data-testid="stMain"]') || document.scrollingElement;
        return Math.max(main.scrollHeight, document.body.scrollHeight);
    }""")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(int(height) + 40, 12000)})
    settle(page, quiet_s=0.5)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(VIEWPORT)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/specdec-shots")
    parser.add_argument("--tiny-run", action="store_true", help="measure a run with tiny random models first")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, serve(Path(tmp) / "runs.sqlite") as url, sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(url)
        settle(page)
        shots = [shoot(page, out / "1-workload.png")]
        goto(page, url, "Run")
        if args.tiny_run:
            sys.path.insert(0, str(ROOT / "tests"))
            import tiny
            target, draft = tiny.save_pair(Path(tmp) / "models")
            fill(page, "Target model", str(target))
            fill(page, "Draft model", str(draft))
            box = page.get_by_role("spinbutton", name="Max new tokens")
            box.fill("96")  # long enough to watch the progress panel
            box.press("Enter")
            settle(page)
            page.get_by_role("button", name="Start run").click()
            page.get_by_text("Prompts done").first.wait_for(timeout=120_000)  # the live progress panel
            time.sleep(2.5)
            shots.append(shoot(page, out / "2-run-progress.png"))
            page.get_by_text("Run finished:", exact=False).first.wait_for(timeout=300_000)
            settle(page)
        shots.append(shoot(page, out / "2-run.png"))
        goto(page, url, "Explore")
        for i, tab in enumerate(EXPLORE_TABS):
            page.get_by_role("tab", name=tab).click()
            settle(page)
            shots.append(shoot(page, out / f"3-explore-{i + 1}.png"))
        goto(page, url, "Decision brief")
        shots.append(shoot(page, out / "4-brief.png"))
        browser.close()
    for s in shots:
        print(s)
    return 0


def fill(page, label: str, value: str) -> None:
    box = page.get_by_role("textbox", name=label)
    box.fill(value)
    box.press("Enter")
    settle(page)


if __name__ == "__main__":
    sys.exit(main())
