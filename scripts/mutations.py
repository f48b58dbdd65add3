"""Mutation check: apply each deliberate bug of issue 17 to a throwaway copy of the tree, run the
decoding tests there, and print which tests caught it (and whether by assertion or by a crash).

    nice -n 10 python scripts/mutations.py [--src .] [--only NAME ...] [--keep]

Never touches the source tree: it copies specdec/, tests/ and pytest.ini (the working tree's current
files, committed or not) into a temporary directory, runs the unmutated tests there first (they must
all pass, else the table means nothing), then for each mutation patches one exact source line, runs
the tests, and restores the file. A mutation whose text is not found exactly once is reported as
STALE (the code moved: update the patch), never silently skipped.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

D, I, M = "tests/test_distribution.py::", "tests/test_invariants.py::", "tests/test_more_drafters.py::"
SAMPLING_MATH = ["tests/test_sampling.py", D + "test_draft_model_joint_distribution_is_the_targets",
                 D + "test_draft_model_gamma_cut_by_max_new_tokens", D + "test_prompt_lookup_joint_distribution_is_the_targets"]
LAYER_SKIP = [M + "test_layer_skip_view_shares_weights_and_equals_a_truncated_model", M + "test_layer_skip_greedy_equals_baseline",
              I + "test_layer_skip_drafts_like_an_independent_truncated_model", "tests/test_reference.py",
              D + "test_layer_skip_joint_distribution_is_the_targets"]
GREEDY_LOOP = ["tests/test_decoding.py::test_greedy_speculative_equals_baseline", "tests/test_reference.py"]

# (name, file, exact original text, mutated text, the tests that cover that code). Each mutation runs
# only its tests, so the check takes minutes on a busy machine; --all runs every test file instead.
MUTATIONS = [
    ("acceptance min(1, q/p)", "specdec/decoding/sampling.py",
     "n = _first_false(r * q_x <= p_x)", "n = _first_false(r * p_x <= q_x)", SAMPLING_MATH),
    ("residual from max(0, q − p)", "specdec/decoding/sampling.py",
     "residual = (p[n] - q[n]).clamp_min(0.0)", "residual = (q[n] - p[n]).clamp_min(0.0)", SAMPLING_MATH),
    ("prompt lookup proposes one token too many", "specdec/decoding/drafters.py",
     "return Proposal(lookup(seq, gamma, self.max_ngram", "return Proposal(lookup(seq, gamma + 1, self.max_ngram",
     ["tests/test_decoding.py::test_prompt_lookup_finds_latest_longest_match",
      D + "test_prompt_lookup_joint_distribution_is_the_targets", I + "test_every_round_drafts_at_most_gamma_and_what_is_left",
      *GREEDY_LOOP]),
    ("layer-skip one layer short (L−1)", "specdec/decoding/drafters.py",
     "list(target.base_model.layers)[:layers]", "list(target.base_model.layers)[:layers - 1]", LAYER_SKIP),
    ("layer-skip shifted by one layer (layers 2…L+1)", "specdec/decoding/drafters.py",
     "list(target.base_model.layers)[:layers]", "list(target.base_model.layers)[1:layers + 1]", LAYER_SKIP),
    ("Medusa head k trained on position k, not k+1", "specdec/decoding/medusa.py",
     "tgt = s[first + 1 + k:].cpu()", "tgt = s[first + k:].cpu()",
     [I + "test_medusa_training_labels_are_the_tokens_k_plus_1_ahead",
      M + "test_heads_learn_the_target_continuations_and_reload_identically"]),
    ("Medusa heads fed the hidden state one position late", "specdec/decoding/loops.py",
     "observe(h[n])", "observe(h[min(n + 1, h.shape[0] - 1)])",
     [I + "test_medusa_reads_the_hidden_state_that_produced_the_last_token", M + "test_medusa_greedy_equals_baseline",
      D + "test_medusa_joint_distribution_is_the_targets", "tests/test_reference.py"]),
    ("draft-cache rollback skipped", "specdec/decoding/drafters.py",
     "        rollback(self.cache, length)\n", "        pass  # rollback(self.cache, length)\n",
     ["tests/test_invariants.py", "tests/test_decoding.py::test_rollback_leaves_cache_equal_to_fresh_forward",
      *GREEDY_LOOP]),
    ("top-p applied to q but not p", "specdec/decoding/loops.py",
     "S.verify_sampled(S.warp(logits, sampling),",
     "S.verify_sampled(S.warp(logits, type(sampling)(sampling.temperature, 1.0, sampling.top_k)),", SAMPLING_MATH),
    ("β from q twice instead of min(p, q)", "specdec/decoding/loops.py",
     "S.acceptance_probability(p, q)", "S.acceptance_probability(q, q)", ["tests/test_invariants.py", "tests/test_sampling.py"]),
]
ALL_TESTS = ["tests/test_sampling.py", "tests/test_decoding.py", "tests/test_more_drafters.py",
             "tests/test_distribution.py", "tests/test_invariants.py", "tests/test_reference.py"]

ASSERTION_MARKS = ("AssertionError", "assert ", "Failed:")  # pytest's junit message starts with one of these


def run_tests(root: Path, label: str, tests: list[str]) -> tuple[list[tuple[str, str]], int, float]:
    """Run the given pytest node ids in root. Returns ([(test id, 'assertion' | 'crash: Type')], tests run, seconds)."""
    xml = root / f"junit-{abs(hash(label))}.xml"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not browser",
                    f"--junitxml={xml}", *tests], cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    caught, total = [], 0
    for case in ET.parse(xml).getroot().iter("testcase"):
        total += 1
        for tag in ("failure", "error"):
            el = case.find(tag)
            if el is not None:
                msg = el.get("message") or ""
                kind = "assertion" if msg.startswith(ASSERTION_MARKS) else "crash: " + msg.split(":")[0][:40]
                name = f"{Path(case.get('classname', '').replace('.', '/')).name}::{case.get('name')}"
                caught.append((name, kind))
    return caught, total, seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default=str(Path(__file__).resolve().parents[1]))
    ap.add_argument("--only", nargs="*", help="substrings of mutation names to run")
    ap.add_argument("--keep", action="store_true", help="keep the temporary copy")
    ap.add_argument("--all", action="store_true", help="run every decoding test file for every mutation")
    args = ap.parse_args(argv)
    src = Path(args.src)
    tmp = Path(tempfile.mkdtemp(prefix="specdec-mut-"))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in ("specdec", "tests"):
        shutil.copytree(src / part, tmp / part, ignore=ignore)
    shutil.copy(src / "pytest.ini", tmp / "pytest.ini")
    print(f"copy: {tmp}")
    try:
        chosen = [m for m in MUTATIONS if not args.only or any(o in m[0] for o in args.only)]
        union = ALL_TESTS if args.all else list(dict.fromkeys(t for m in chosen for t in m[4]))
        failed, total, secs = run_tests(tmp, "clean", union)
        print(f"unmutated: {total} tests, {len(failed)} failing, {secs:.0f} s")
        if failed:
            for name, kind in failed:
                print(f"  FAILS WITHOUT A MUTATION: {name} ({kind})")
            return 1
        rows = []
        for name, rel, old, new, tests in chosen:
            path = tmp / rel
            original = path.read_text()
            if original.count(old) != 1:
                rows.append((name, f"STALE: {old!r} found {original.count(old)}× in {rel}", 0))
                continue
            path.write_text(original.replace(old, new))
            try:
                caught, _, secs = run_tests(tmp, name, ALL_TESTS if args.all else tests)
            finally:
                path.write_text(original)
            rows.append((name, caught, secs))
            print(f"{name}: {len(caught)} caught in {secs:.0f} s", flush=True)
        print("\n| mutation | caught by (assertion unless marked) |\n|---|---|")
        missed = 0
        for name, caught, _ in rows:
            if isinstance(caught, str):
                print(f"| {name} | {caught} |")
                missed += 1
                continue
            if not caught:
                missed += 1
            asserted = [t for t, k in caught if k == "assertion"]
            crashed = [f"{t} ({k})" for t, k in caught if k != "assertion"]
            cell = ", ".join(asserted + crashed) or "**NOT CAUGHT**"
            print(f"| {name} | {cell} |")
        return 1 if missed else 0
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
