"""First use, timed as a new user meets it: a clean clone, an empty model cache, the README's start command,
a 12-prompt CSV uploaded, the Quick look preset, Start run — until "Explore this run" (conversion included).

    flock /tmp/specdec-heavy.lock python benchmarks/first_use.py [--clone /tmp/clone19] [--cache /tmp/emptycache]

Clones this repository's HEAD into --clone (replaced), empties --cache and points SPECDEC_CACHE at it, starts
`streamlit run app.py` there on 127.0.0.1 and a free port (the README's command plus the bind flags), and
drives it with Playwright through Debian's chromium. While the job runs it clicks the Advanced expander every
15 s and records how long the page takes to answer (the page must stay responsive throughout). Prints the
stages seen with their times, the total, the click latencies, and one JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import screenshots as shots  # noqa: E402


def _text(rec: dict) -> str:
    if rec.get("prompt"):
        return rec["prompt"]
    return next(m["content"] for m in reversed(rec.get("messages") or []) if m.get("role") == "user")


def twelve_prompt_csv(path: Path) -> Path:
    """The first 12 prompts of the mixed sample workload (a chat's last user turn), as prompt,category CSV."""
    rows = []
    for line in (ROOT / "sample_workloads" / "mixed.jsonl").read_text().splitlines()[:12]:
        rec = json.loads(line)
        rows.append((_text(rec), rec.get("category", "mixed")))
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["prompt", "category"])
        w.writerows(rows[:12])
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clone", type=Path, default=Path("/tmp/clone19"))
    ap.add_argument("--cache", type=Path, default=Path("/tmp/emptycache"))
    ap.add_argument("--timeout-min", type=float, default=30.0)
    args = ap.parse_args()

    shutil.rmtree(args.clone, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", str(ROOT), str(args.clone)], check=True)
    shutil.rmtree(args.cache, ignore_errors=True)
    args.cache.mkdir(parents=True)
    tmp = Path(tempfile.mkdtemp(prefix="first-use-"))
    workload = twelve_prompt_csv(tmp / "twelve.csv")
    port = shots.free_port()
    env = {**os.environ, "SPECDEC_CACHE": str(args.cache), "SPECDEC_STORE": str(tmp / "runs.sqlite"),
           "PYTHONUNBUFFERED": "1"}
    log = open(tmp / "streamlit.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
                               "--server.port", str(port), "--server.headless", "true",
                               "--browser.gatherUsageStats", "false"],
                              cwd=args.clone, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    stages, clicks = [], []
    try:
        from playwright.sync_api import sync_playwright
        import urllib.request
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("streamlit did not start")
                time.sleep(0.3)
        with sync_playwright() as p:
            browser = shots.launch(p)
            page = browser.new_page(viewport=shots.VIEWPORT)
            page.goto(url)
            shots.settle(page)
            page.get_by_text("Upload a file", exact=True).click()
            shots.settle(page)
            page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(workload))
            page.get_by_text("twelve.csv").first.wait_for()
            shots.settle(page)
            shots.goto(page, url, "Run")
            page.locator('[data-testid="stSelectbox"]').first.click()  # the Preset box
            page.get_by_role("option", name="Quick look").click()
            shots.settle(page)
            estimate = page.locator('[data-testid="stMetric"]').first.inner_text().replace("\n", " ")
            note = page.get_by_text("Includes").first.inner_text() if page.get_by_text("Includes").count() else ""
            preset = page.locator('[data-testid="stSelectbox"]').first.inner_text().replace("\n", " ")
            print(f"{preset}; {estimate}; {note}", flush=True)
            page.get_by_role("button", name="Start run").click()
            started = time.monotonic()
            last_stage, last_click = None, started
            done = page.get_by_role("button", name="Explore this run")
            while not done.count():
                if time.monotonic() - started > args.timeout_min * 60:
                    raise SystemExit(f"no result after {args.timeout_min} min")
                bar = page.locator('[data-testid="stProgress"]')
                text = bar.first.inner_text().strip().splitlines()[0] if bar.count() else ""
                stage = text.split(":")[0][:80] if text else None
                if stage and stage != last_stage:
                    stages.append((round(time.monotonic() - started, 1), text[:120]))
                    print(f"{stages[-1][0]:7.1f} s  {text[:120]}", flush=True)
                    last_stage = stage
                if time.monotonic() - last_click > 15:  # does the page answer a click?
                    t0 = time.monotonic()
                    page.get_by_text("Advanced").first.click()
                    shots.settle(page, quiet_s=0.2)
                    clicks.append(round(time.monotonic() - t0, 2))
                    last_click = time.monotonic()
                time.sleep(0.5)
            total = time.monotonic() - started
            browser.close()
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    sys.path.insert(0, str(ROOT))
    from specdec.store import Store
    store = Store(tmp / "runs.sqlite")
    run = store.load_run(store.list_runs()[0]["run_id"])
    machine = run["manifest"].get("machine") or {}
    print(f"run {run['manifest']['run_id']}: {run['manifest']['status']}, {len(run['prompts'])} prompts; machine: other CPU "
          f"{(machine.get('other_cpu') or {}).get('mean')} cores on average, reference drift {machine.get('drift')}, "
          f"busy={machine.get('busy')}, drifted={machine.get('drifted')}")
    print(f"\nStart run → 'Explore this run': {total:.0f} s ({total / 60:.1f} min), conversion included; "
          f"{len(clicks)} clicks answered in median {sorted(clicks)[len(clicks) // 2] if clicks else None} s, "
          f"max {max(clicks) if clicks else None} s")
    print(json.dumps({"total_s": round(total, 1), "stages": stages, "click_s": clicks, "clone": str(args.clone),
                      "cache": str(args.cache), "machine": machine}))


if __name__ == "__main__":
    main()
