"""The app's non-Streamlit helpers: run planning and the estimate (runplan), the background worker, and
the data views of the Explore page (views). Tiny random models only."""

from dataclasses import replace
import functools
import json
import threading
import time
from pathlib import Path

import pytest

from specdec import config
from specdec.measure import bundled, runplan
from specdec.measure.bench import WARMUP_TOKENS
from specdec.present import views
from specdec.measure import jobs, worker
from specdec.errors import SpecdecError
from specdec.store import Store
from specdec.measure.calibrate import calibrate
from specdec.measure.speeds import Speeds, speeds_from_results
from specdec.measure.workloads import load_workload

FIXTURE_WORKLOAD = Path(__file__).parent / "fixtures" / "tiny_workload.jsonl"


# ---- runplan ----

def test_run_config_checks_every_field():
    ok = dict(target="t", draft="d", methods=["draft"], draft_lengths=[4, 2, 2], max_new_tokens=8)
    cfg = runplan.run_config(**ok)
    assert cfg.draft_lengths == (2, 4) and cfg.sampling.greedy
    for bad, words in ((dict(methods=[]), "at least one method"), (dict(methods=["eagle"]), "unknown: eagle"),
                       (dict(methods=["medusa"]), "needs trained heads"),
                       (dict(draft_lengths=[0]), "from 1 to"), (dict(draft_lengths=[config.MAX_DRAFT_LENGTH + 1]), "from 1 to"),
                       (dict(max_new_tokens=0), "at least 1"), (dict(target=" "), "target model"),
                       (dict(draft=""), "needs a draft"), (dict(top_p=0.0), "top-p"), (dict(temperature=-1), "temperature")):
        with pytest.raises(SpecdecError, match=words):
            runplan.run_config(**{**ok, **bad})
    # No draft needed for prompt lookup alone.
    assert runplan.run_config(**{**ok, "methods": ["prompt-lookup"], "draft": ""}).methods == ("prompt-lookup",)


def test_quick_preset_is_a_traced_run_of_twenty_prompts_in_minutes():
    """Traced by default (greedy): ≥ 20 prompts for a pooled verdict, every γ 1–8, in well under a quarter hour
    at the speeds the recorded example measured for the bundled pair on 2 cores (float32, AMD EPYC) and at
    the issue's figures (target ≈ 4 tok/s bf16, draft ≈ 3× faster); the estimate shows both parts."""
    q = runplan.PRESETS["quick"]
    cfg = runplan.run_config(target=config.BUNDLED_TARGET, draft=config.BUNDLED_DRAFT, methods=q.methods,
                             draft_lengths=q.draft_lengths, max_new_tokens=q.max_new_tokens,
                             real_prompts=q.real_prompts)
    assert cfg.mode == "traced" and q.max_prompts >= config.MIN_PROMPTS and cfg.draft_lengths == tuple(range(1, 9))
    assumed = Speeds(target_step_s=0.25, draft_step_s=0.08, verify_slope=0.08, prefill_s_per_token=0.008,
                     draft_prefill_s_per_token=0.003, source="assumed")
    measured = speeds_from_results(json.loads(views.example_results_path().read_text()))
    for speeds in (assumed, measured):
        assert 2 * 60 < runplan.estimate_run(cfg, q.max_prompts, 150, speeds).total_s < 15 * 60
    est = runplan.estimate_run(cfg, q.max_prompts, 150, assumed)
    assert est.low_s < est.total_s < est.high_s  # acceptance moves the real subset only
    assert set(est.by_config) == {"real subset: 2 prompts", "traced: 20 prompts in 1 batch"}
    real = runplan.run_config(target="t", draft="d", methods=q.methods, draft_lengths=q.draft_lengths,
                              max_new_tokens=q.max_new_tokens, mode="real")
    assert runplan.estimate_run(real, q.max_prompts, 150, assumed).total_s > 5 * est.total_s


def test_traced_estimate_by_hand():
    s = Speeds(target_step_s=0.1, draft_step_s=0.02, verify_slope=0.0, prefill_s_per_token=0.0,
               draft_prefill_s_per_token=0.0, source="x", acceptance={"prompt-lookup": 0.0})
    cfg = runplan.run_config(target="t", draft="", methods=["prompt-lookup"], draft_lengths=[2], max_new_tokens=10,
                             real_prompts=1)
    est = runplan.estimate_run(cfg, 8, 0, s)
    # real: warm-up (WARMUP_TOKENS) + one prompt (10 tokens), each baseline + lookup at α = 0 (τ = 1), + the
    # verify probe of the length γ 2 does not run (1), with its one-token reference: 8 passes of each, 0.1 s;
    # traced: one batch of 8 rows, 10 + 2 steps of 0.1 s (slope 0: rows share the step).
    w = WARMUP_TOKENS - 1
    real = (w * 0.1 + w * 0.1) + (0.9 + 9 * 0.1) + config.VERIFY_PROBE_PASSES * 2 * 0.1
    assert est.by_config == {"real subset: 1 prompts": pytest.approx(real),
                             "traced: 8 prompts in 1 batch": pytest.approx(12 * 0.1)}
    assert est.total_s == pytest.approx(real + 1.2)
    # 40 prompts: two even batches of 20 (traces.run.batches), each 12 steps
    assert runplan.estimate_run(cfg, 40, 0, s).by_config["traced: 40 prompts in 2 batches"] == pytest.approx(2.4)


def test_estimate_formula_by_hand():
    s = Speeds(target_step_s=0.1, draft_step_s=0.02, verify_slope=0.0, prefill_s_per_token=0.0,
               draft_prefill_s_per_token=0.0, source="x", acceptance={"draft": 0.0})
    # α = 0 → τ = 1: every one of the 9 later tokens costs γ draft steps + one verify.
    assert runplan.generation_s("draft", 2, 10, 0, s, 0.0) == pytest.approx(9 * (2 * 0.02 + 0.1))
    assert runplan.generation_s("baseline", 0, 10, 0, s, 0.0) == pytest.approx(0.9)
    # α = 1 → τ = γ + 1 tokens per pass.
    assert runplan.generation_s("prompt-lookup", 2, 10, 0, s, 1.0) == pytest.approx(9 / 3 * 0.1)
    cfg = runplan.run_config(target="t", draft="d", methods=["draft"], draft_lengths=[2], max_new_tokens=10,
                             mode="real")
    est = runplan.estimate_run(cfg, 3, 0, s)
    assert est.low_s == est.total_s == est.high_s  # measured α: no range
    warm = (runplan.generation_s("baseline", 0, WARMUP_TOKENS, 0, s, 0)
            + runplan.generation_s("draft", 2, WARMUP_TOKENS, 0, s, 0))
    assert est.total_s == pytest.approx(warm + 3 * (0.9 + 9 * 0.14))
    assert runplan.format_duration(59.6) == "1 min 00 s" and runplan.format_duration(3725) == "1 h 02 min"


def test_calibrate_and_speeds_from_results(tiny_model_dirs):
    from specdec.measure.models import load_pair
    target, draft = load_pair(str(tiny_model_dirs[0]), str(tiny_model_dirs[1]), dtype="float32", device="cpu")
    s = calibrate(target, draft, max_gamma=4)
    assert s.target_step_s > 0 and s.draft_step_s > 0 and s.prefill_s_per_token > 0 and s.verify_slope >= 0
    assert f"(matmul: {target.model.specdec_linear})" in s.source  # the speeds belong to the chosen kernels
    example = json.loads(views.example_results_path().read_text())
    r = speeds_from_results(example)
    measured = {run["method"] for p in example["prompts"] for run in p["runs"]}
    assert r.target_step_s > 0 and set(r.acceptance) == measured
    assert all(0 <= v <= 1 for v in r.acceptance.values())


# ---- worker ----

def _tiny_cfg(dirs, **kw):
    base = dict(target=str(dirs[0]), draft=str(dirs[1]), methods=["draft", "prompt-lookup"], draft_lengths=[2],
                max_new_tokens=6, dtype="float32", device="cpu", mode="real")
    return runplan.run_config(**{**base, **kw})


@pytest.mark.slow
def test_worker_runs_in_a_measuring_process_and_stores_results(tiny_model_dirs, tmp_path):
    """The job runs in a child process (not a thread of this one), reports progress and the run id back,
    and keeps its models loaded for the next job."""
    db = tmp_path / "runs.sqlite"
    w = worker.Worker(store_factory=functools.partial(Store, db), log_dir=tmp_path / "logs")
    try:
        wl = load_workload(FIXTURE_WORKLOAD, max_prompts=3)
        threads = {t.name for t in threading.enumerate()}
        w.start_run(_tiny_cfg(tiny_model_dirs, max_new_tokens=48), wl)  # long enough to be seen running
        assert w.status().busy
        with pytest.raises(SpecdecError, match="already running"):
            w.start_run(_tiny_cfg(tiny_model_dirs), wl)
        seen = []
        while w.status().busy:
            seen.append(w.status())
            time.sleep(0.05)
        s = w.status()
        assert s.state == "complete", s.error
        assert s.progress.done == s.progress.total == 3 and s.run_id
        assert any(x.state == "running" and x.progress is not None for x in seen)  # live progress came back
        assert not {t.name for t in threading.enumerate()} - threads - {"specdec-measure-reader"}  # no job thread here
        assert s.log and Path(s.log).parent == tmp_path / "logs"
        stored = Store(db).load_run(s.run_id)
        assert len(stored["prompts"]) == 3 and stored["manifest"]["status"] == "complete"
        machine = stored["manifest"]["machine"]  # the reference step after warm-up, each prompt, and at the end
        assert len(machine["reference_s"]) == 3 + 2 and all(t > 0 for t in machine["reference_s"])
        assert isinstance(machine["busy"], bool) and (s.unreliable is not None) == (machine["busy"] or machine["drifted"])
        # The loaded pair is kept in the child: calibrating the same models loads nothing.
        assert w.loaded() == jobs.model_key(_tiny_cfg(tiny_model_dirs))
        w.start_calibration(_tiny_cfg(tiny_model_dirs))
        details = set()
        while w.status().busy:
            details.add(w.status().detail)
            time.sleep(0.01)
        assert w.status().state == "complete" and w.speeds(_tiny_cfg(tiny_model_dirs)).target_step_s > 0
        assert not any(d.startswith("load ") for d in details)
    finally:
        w.close()


@pytest.mark.slow
def test_worker_cancel_keeps_measured_prompts(tiny_model_dirs, tmp_path, monkeypatch):
    """Cancel = SIGINT to the measuring process: the run stops as with Ctrl-C, finished prompts stored. The run
    holds after its first prompt until the cancel lands (tests/slowload.py), so it cannot finish first.
    The process must survive even when it reports idle before the cancelling thread runs again (a loaded
    machine): the signal is made to return only once that report is in, with a short grace — a report erased
    by the canceller would get the process terminated when the grace runs out. And the server here ignores
    SIGINT, as anything started from a background job of a script does: the child must not inherit that."""
    import signal
    import slowload
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # so the child can unpickle slowload
    monkeypatch.setattr(worker, "CANCEL_GRACE_S", 3.0)
    db = tmp_path / "runs.sqlite"
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited by the measuring process at exec
    try:
        w = worker.Worker(store_factory=functools.partial(Store, db), log_dir=tmp_path / "logs",
                          load_with_drafts=slowload.load_then_hold_after_first_prompt)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        w.start_run(_tiny_cfg(tiny_model_dirs, max_new_tokens=16), load_workload(FIXTURE_WORKLOAD))
        deadline = time.monotonic() + 120  # bounds a hang only
        while not (w.status().progress and w.status().progress.done >= 1) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert w.status().busy and w.status().progress.done == 1, w.status()
        child = w._child  # noqa: SLF001
        send = child._proc.send_signal  # noqa: SLF001

        def send_then_lose_the_cpu(sig):
            send(sig)
            until = time.monotonic() + 30
            while w.status().busy and time.monotonic() < until:  # the child's idle report is in before we go on
                time.sleep(0.02)
        child._proc.send_signal = send_then_lose_the_cpu  # noqa: SLF001
        w.cancel()  # returns once the job has stopped (the patched signal waits for the idle report)
        assert w.join(60)
        s = w.status()
        assert s.state == "interrupted"
        stored = Store(db).load_run(s.run_id)
        assert len(stored["prompts"]) == 1 and stored["manifest"]["status"] == "interrupted"
        time.sleep(worker.CANCEL_GRACE_S + 1)  # past the grace: nothing may terminate the process now
        assert w._child is child and child.alive()  # noqa: SLF001 — SIGINT stopped the job, not the process
    finally:
        w.close()


def test_a_crashed_measuring_process_is_one_line_naming_its_log(tiny_model_dirs, tmp_path):
    w = worker.Worker(store_factory=functools.partial(Store, tmp_path / "r.sqlite"), log_dir=tmp_path / "logs")
    try:
        w.start_run(_tiny_cfg(tiny_model_dirs), load_workload(FIXTURE_WORKLOAD))
        deadline = time.monotonic() + 60
        while w._child is None and time.monotonic() < deadline:  # noqa: SLF001
            time.sleep(0.01)
        w._child._proc.kill()  # noqa: SLF001 — what the OOM killer would do
        assert w.join(30)
        s = w.status()
        assert s.state == "failed" and "\n" not in s.error
        assert "measuring process stopped unexpectedly (exit code -9)" in s.error and s.log in s.error
        w.start_calibration(_tiny_cfg(tiny_model_dirs))  # a new measuring process takes the next job
        assert w.join(120) and w.status().state == "complete", w.status().error
    finally:
        w.close()


def test_worker_turns_failures_into_one_line(tmp_path):
    w = worker.Worker(store_factory=lambda: Store(tmp_path / "r.sqlite"), isolate=False)
    cfg = runplan.run_config(target=str(tmp_path / "missing"), draft=str(tmp_path / "nope"), methods=["draft"],
                             draft_lengths=[2], max_new_tokens=4, device="cpu")
    w.start_run(cfg, load_workload(FIXTURE_WORKLOAD, max_prompts=1))
    assert w.join(60)
    s = w.status()
    assert s.state == "failed" and "\n" not in s.error and "missing" in s.error

    def boom(*a, **k):
        raise RuntimeError("kaput\nsecond line")
    w2 = worker.Worker(store_factory=lambda: Store(tmp_path / "r.sqlite"), load_with_drafts=boom, isolate=False)
    w2.start_calibration(cfg)
    assert w2.join(60)
    assert w2.status().state == "failed" and w2.status().error == "RuntimeError: kaput"
    w2.start_calibration(cfg)  # a finished job frees the worker
    assert w2.join(60)


# ---- views ----

@pytest.fixture(scope="module")
def example():
    from specdec import results
    return results.load(views.example_results_path())


def test_verify_cycles_rebuild_the_output(example):
    for p in example["prompts"]:
        for run in p["runs"]:
            cycles = views.verify_cycles(example, p["id"], run["method"], run["draft_length"])
            rebuilt = run["tokens"][:1] + [t for c in cycles for t in c["emitted"]]
            assert rebuilt == run["tokens"]
            for c in cycles:
                n = c["accepted"]
                assert c["status"][:n] == ["accepted"] * n
                kept = min(n, len(c["emitted"]))  # an accepted EOS ends the output inside the round
                assert c["emitted"][:kept] == c["drafted"][:kept]  # accepted drafts are the output
                if n < len(c["drafted"]):
                    assert c["status"][n] == "rejected" and set(c["status"][n + 1:]) <= {"discarded"}
                    assert c["next_kind"] in ("resampled", "cut")
                elif c["drafted"]:
                    assert c["next_kind"] in ("bonus", "cut")


def test_verify_cycles_kinds_on_a_hand_made_run():
    run = {"method": "draft", "draft_length": 3, "tokens": [5, 1, 2, 3, 9, 7, 8, 6, 4, 0], "text": "", "new_tokens": 10,
           "prefill_s": 0, "decode_s": 0, "rounds": [
               {"drafted": 3, "accepted": 3, "draft_tokens": [1, 2, 3], "beta": [0.9, 0.8, 0.7], "draft_s": 0, "verify_s": 0},
               {"drafted": 3, "accepted": 1, "draft_tokens": [7, 4, 4], "beta": [0.9, 0.1, 0.5], "draft_s": 0, "verify_s": 0},
               {"drafted": 0, "accepted": 0, "draft_tokens": [], "beta": [], "draft_s": 0, "verify_s": 0},
               # EOS (0) drafted and accepted: the round ends there, before any target token.
               {"drafted": 3, "accepted": 3, "draft_tokens": [4, 0, 3], "beta": [0.9, 0.9, 0.9], "draft_s": 0,
                "verify_s": 0, "emitted": 2}]}
    res = {"prompts": [{"id": "p", "category": "c", "prompt": "", "baseline": {}, "runs": [run]}]}
    c = views.verify_cycles(res, "p", "draft", 3)
    assert [x["next_kind"] for x in c] == ["bonus", "resampled", "target step", "cut"]
    assert c[1]["status"] == ["accepted", "rejected", "discarded"] and c[1]["next_token"] == 8
    assert c[0]["emitted"] == [1, 2, 3, 9] and c[2]["emitted"] == [6] and c[2]["start"] == 7
    assert c[3]["emitted"] == [4, 0] and c[3]["next_token"] is None
    with pytest.raises(SpecdecError):
        views.verify_cycles(res, "p", "prompt-lookup", 3)


def test_outputs_table_finds_the_first_divergence():
    res = {"prompts": [{"id": "a", "category": "c", "prompt": "q",
                        "baseline": {"tokens": [1, 2, 3], "text": "abc"},
                        "runs": [{"method": "draft", "draft_length": 2, "tokens": [1, 2, 4], "text": "abd"}]}]}
    row = views.outputs_table(res, "draft", 2).iloc[0]
    assert not row["identical"] and row["first_divergence"] == 2 and row["common_chars"] == 2


def test_token_pieces_and_tokenizer_fallback(tokenizer):
    assert views.token_pieces([7, 8]) == ["#7", "#8"]
    assert views.token_pieces(list(b"a b\n"), tokenizer) == ["a", "␣", "b", "⏎"]
    assert views.load_tokenizer({"models": {"target": {"local_path": "/nonexistent"}}}) is None


def test_gamma_point_is_the_projection_and_marks_measured(example):
    from specdec.analysis import summary as analysis
    a = analysis.analyze(example, n_boot=200)
    measured = views.gamma_point(a, "draft", 2)
    assert measured["measured"] is not None and not measured["extrapolated"]
    row = a.projection[(a.projection["method"] == "draft") & (a.projection["gamma"] == 2)].iloc[0]
    assert measured["speedup"] == pytest.approx(row["speedup"])
    far = views.gamma_point(a, "draft", 9)
    assert far["measured"] is None and far["extrapolated"] and far["tau"] != measured["tau"]
    csv = views.prompt_metrics_csv(a).decode().splitlines()
    assert csv[0].startswith("prompt_id,category") and len(csv) == 1 + len(a.prompts)


def test_sample_files_and_upload_errors():
    names = [p.name for p in views.sample_workload_files()]
    assert "mixed.jsonl" in names and "README.md" not in names
    with pytest.raises(SpecdecError, match="bad.json is not JSON"):
        views.results_from_bytes(b"{nope", "bad.json")
    with pytest.raises(SpecdecError, match="not a specdec results file"):
        views.results_from_bytes(b"[1, 2]", "list.json")


# ---- issue 8: several draft models, layer-skip, Medusa heads ----

def test_estimate_prices_every_method_by_hand():
    s = Speeds(target_step_s=0.1, draft_step_s=0.02, verify_slope=0.0, prefill_s_per_token=0.0,
               draft_prefill_s_per_token=0.0, source="x", draft_steps={"a": 0.02},
               draft_parameters={"a": 500}, target_parameters=2000, target_layers=28, medusa_round_s=0.01)
    cfg = runplan.run_config(target="t", draft="a, org/b", methods=["draft", "layer-skip", "medusa"],
                             draft_lengths=[4], max_new_tokens=10, layer_skip_layers=[7], medusa_heads="h", mode="real")
    with pytest.raises(SpecdecError, match="no speed measured for the draft model org/b"):
        runplan.estimate_run(cfg, 1, 0, s)
    s = Speeds(**{**s.__dict__, "draft_parameters": {"a": 500, "org/b": 1000}})
    costs = {c.key: c for c in runplan.drafter_costs(cfg, s, medusa_k=2)}
    assert list(costs) == ["draft:a", "draft:b", "layer-skip:L7", "medusa"]
    assert costs["draft:a"].step_s == 0.02 and costs["draft:a"].how == "measured"
    assert costs["draft:b"].step_s == pytest.approx(0.1 * 1000 / 2000) and costs["draft:b"].how == "scaled by size"
    assert costs["layer-skip:L7"].step_s == pytest.approx(0.1 * 7 / 28)  # L/N of a target step
    # α = 0 → τ = 1: 9 rounds; layer-skip drafts γ steps a round, Medusa one heads pass (γ capped at K = 2).
    ls = runplan.generation_s("layer-skip:L7", 4, 10, 0, s, 0.0, costs["layer-skip:L7"])
    assert ls == pytest.approx(9 * (4 * 0.025 + 0.1))
    assert runplan.generation_s("medusa", 4, 10, 0, s, 0.0, costs["medusa"]) == pytest.approx(9 * (0.01 + 0.1))
    s1 = Speeds(**{**s.__dict__, "verify_slope": 1.0})  # the cap shows in the verify width
    assert runplan.generation_s("medusa", 4, 10, 0, s1, 0.0, costs["medusa"]) == pytest.approx(9 * (0.01 + 0.3))
    est = runplan.estimate_run(cfg, 2, 0, s, medusa_k=2)
    assert set(est.by_config) == {"baseline", "draft:a γ=4", "draft:b γ=4", "layer-skip:L7 γ=4", "medusa γ=4"}
    assert est.how["draft:b"] == "scaled by size" and est.acceptance["medusa"] == runplan.ACCEPTANCE_GUESS["medusa"]
    assert est.draft_speed["draft:b γ=4"] == "scaled by size" and est.draft_speed["draft:a γ=4"] == "measured"
    assert set(est.draft_speed) == set(est.by_config) - {"baseline"}  # the Run page's table reads it per row
    # No L given: half the target's layers; an L the target does not have is one line.
    half = runplan.drafter_costs(runplan.run_config(**{**_cfg_args(), "layer_skip_layers": []}), s)
    assert [c.key for c in half] == ["layer-skip:L14"]
    with pytest.raises(SpecdecError, match="the target has 28 layers; choose 1 … 27"):
        runplan.drafter_costs(runplan.run_config(**{**_cfg_args(), "layer_skip_layers": [28]}), s)


def _cfg_args():
    return dict(target="t", draft="", methods=["layer-skip"], draft_lengths=[2], max_new_tokens=8)


def test_parse_layers_and_presets():
    assert runplan.parse_layers("") == () and runplan.parse_layers("14, 7 7") == (7, 14)
    for text, words in (("eight", "whole numbers"), ("0", "at least 1"), ("3, 28", "has 28 layers")):
        with pytest.raises(SpecdecError, match=words):
            runplan.parse_layers(text, 28)
    c = runplan.PRESETS["compare"]
    cfg = runplan.run_config(target="t", draft="d", methods=c.methods, draft_lengths=c.draft_lengths,
                             max_new_tokens=c.max_new_tokens)
    speeds = Speeds(target_step_s=0.25, draft_step_s=0.08, verify_slope=0.08, prefill_s_per_token=0.008,
                    draft_prefill_s_per_token=0.003, source="assumed", target_layers=28)
    est = runplan.estimate_run(cfg, c.max_prompts, 150, speeds)
    assert est.total_s < 25 * 60 and c.max_prompts >= config.MIN_PROMPTS  # traced: 50 prompts, γ 1–8
    assert "layer-skip:L14" in est.acceptance


def test_speeds_from_a_run_of_five_methods():
    import synthetic
    s = speeds_from_results(synthetic.make_results(synthetic.multi_spec(n_per_category=4)))
    assert set(s.draft_steps) == {"org/model-a", "org/model-b"}
    assert s.draft_steps["org/model-a"] == pytest.approx(0.004, rel=0.05)
    assert s.draft_steps["org/model-b"] == pytest.approx(0.0025, rel=0.05)
    assert set(s.layer_steps) == {4} and s.medusa_round_s == pytest.approx(0.003, rel=0.05)
    assert s.target_layers == 28 and set(s.draft_acceptance) == {"org/model-a", "org/model-b"}
    cfg = runplan.run_config(target="t", draft="org/model-b", methods=["draft", "medusa", "layer-skip"],
                             draft_lengths=[2], max_new_tokens=8, medusa_heads="h", layer_skip_layers=[4, 8])
    costs = {c.key: c for c in runplan.drafter_costs(cfg, s)}
    assert costs["draft"].acceptance == (s.draft_acceptance["org/model-b"],) * 3  # measured α follows the model
    assert costs["layer-skip:L4"].how == "measured" and costs["layer-skip:L8"].how == "scaled by layers"


def test_calibrate_times_every_drafter(tiny_model_dirs, tmp_path):
    from specdec.measure.models import load_with_drafts
    other = tmp_path / "draft2"
    other.symlink_to(tiny_model_dirs[1], target_is_directory=True)
    target, drafts = load_with_drafts(str(tiny_model_dirs[0]), [str(tiny_model_dirs[1]), str(other)],
                                      dtype="float32", device="cpu")
    s = calibrate(target, drafts, max_gamma=2, layer_skip=(1, 5))
    assert set(s.draft_steps) == {str(tiny_model_dirs[1]), str(other)} and all(v > 0 for v in s.draft_steps.values())
    assert set(s.layer_steps) == {1} and s.medusa_round_s > 0 and s.target_layers == 2  # L=5 ≥ 2 layers: skipped
    cfg = _tiny_cfg(tiny_model_dirs, draft=[str(tiny_model_dirs[1]), str(other)],
                    methods=["draft", "layer-skip", "medusa", "prompt-lookup"], medusa_heads="h")
    est = runplan.estimate_run(cfg, 2, 30, s)
    assert {c.split(" ")[0] for c in est.by_config} == {"baseline", "draft:draft", "draft:draft2", "layer-skip:L1",
                                                        "medusa", "prompt-lookup"}
    assert set(est.how.values()) == {"measured"}


def test_medusa_train_stops_between_steps(target):
    import torch

    from specdec.decoding import medusa
    H, Y = torch.randn(40, target.config.hidden_size), torch.randint(0, 200, (40, 2))
    heads = medusa.MedusaHeads(target.config.hidden_size, 2)
    calls = []
    losses = medusa.train(heads, target.lm_head, H, Y, steps=50, batch=8, lr=1e-3,
                          should_stop=lambda: calls.append(1) or len(calls) > 3)
    assert len(losses) == 3 and not heads.training


def test_heads_dirs_are_listed_from_disk(tmp_path):
    w = worker.Worker(store_factory=lambda: Store(tmp_path / "r.sqlite"), heads_root=tmp_path / "heads")
    assert w.saved_heads() == []
    (tmp_path / "heads" / "junk").mkdir(parents=True)  # not a heads directory: ignored
    assert w.saved_heads() == [] and jobs.heads_summary(tmp_path / "nowhere") is None


@pytest.mark.slow
def test_worker_trains_heads_then_runs_every_method(tiny_model_dirs, tmp_path):
    from specdec.decoding import medusa
    db = tmp_path / "runs.sqlite"
    seen = []

    def fit(*a, on_progress, **k):  # the real fit, watching the Status the page would show
        def tap(*args):
            on_progress(*args)
            seen.append(w.status().training)
        return medusa.fit(*a, on_progress=tap, **k)
    w = worker.Worker(store_factory=lambda: Store(db), fit=fit, heads_root=tmp_path / "heads", isolate=False)
    wl = load_workload(FIXTURE_WORKLOAD, max_prompts=4)
    opts = jobs.TrainOptions(num_heads=2, steps=20, batch=16, max_new_tokens=8, dtype="float32", device="cpu")
    target = str(tiny_model_dirs[0])
    w.start_training(target, wl, opts)
    assert w.join(120)
    s = w.status()
    assert s.state == "complete" and s.kind == "train", s.error
    assert s.training.stage == "scoring" and {p.stage for p in seen} >= {"collecting", "training"}
    step = next(p for p in seen if p.stage == "training" and p.done > 1)
    assert step.total == 20 and step.detail.startswith("loss ") and step.eta_s is not None
    saved = w.saved_heads(target)
    assert [h["path"] for h in saved] == [s.heads_dir] and saved[0]["heads"] == 2 and len(saved[0]["top1"]) == 2
    assert w.saved_heads("another-target") == []
    assert s.heads_dir.startswith(str(tmp_path / "heads" / "target-tiny_workload-K2-20s-"))
    # The heads go straight into a run with two draft models and layer-skip beside them.
    other = tmp_path / "draft2"
    other.symlink_to(tiny_model_dirs[1], target_is_directory=True)
    cfg = _tiny_cfg(tiny_model_dirs, draft=[str(tiny_model_dirs[1]), str(other)], layer_skip_layers=[1],
                    methods=["draft", "layer-skip", "medusa"], medusa_heads=s.heads_dir)
    w.start_run(cfg, wl)
    assert "target + draft + draft2 + layer-skip L1 + Medusa heads" in w.status().label
    assert w.join(120)
    s = w.status()
    assert s.state == "complete", s.error
    drafters = Store(db).load_run(s.run_id)["manifest"]["models"]["drafters"]
    assert set(drafters) == {"draft:draft", "draft:draft2", "layer-skip:L1", "medusa", "medusa:train"}


@pytest.mark.slow
def test_worker_cancels_training_and_saves_nothing(tiny_model_dirs, tmp_path):
    w = worker.Worker(store_factory=lambda: Store(tmp_path / "r.sqlite"), heads_root=tmp_path / "heads", isolate=False)
    opts = jobs.TrainOptions(num_heads=2, steps=1_000_000, batch=8, max_new_tokens=6, dtype="float32", device="cpu")
    w.start_training(str(tiny_model_dirs[0]), load_workload(FIXTURE_WORKLOAD, max_prompts=4), opts)
    deadline = time.monotonic() + 120
    while (w.status().training is None or w.status().training.stage != "training") and time.monotonic() < deadline:
        time.sleep(0.05)
    w.cancel()
    assert "cancelling: stops after the step in progress" == w.status().detail
    assert w.join(60)
    assert w.status().state == "interrupted" and w.status().heads_dir is None
    assert w.saved_heads() == []
    with pytest.raises(SpecdecError, match="at least 2 prompts"):
        w.start_training(str(tiny_model_dirs[0]), load_workload(FIXTURE_WORKLOAD, max_prompts=1), opts)


def test_training_estimate_collects_then_steps():
    """Collecting = a baseline generation plus one forward over prompt + continuation per prompt; the steps
    at the step time a stored run recorded (none recorded: no figure, never a guess)."""
    s = Speeds(target_step_s=0.3, draft_step_s=None, verify_slope=0.1, prefill_s_per_token=0.02,
               draft_prefill_s_per_token=0.0, source="run X", medusa_train_step_s=1.5)
    te = runplan.estimate_training(10, 100.0, 200, s, new_tokens=96)
    assert te.collect_s == pytest.approx(10 * (0.02 * (2 * 100 + 96) + 95 * 0.3))
    assert te.train_s == pytest.approx(300.0) and te.prompts == 10 and te.source == "run X"
    assert runplan.estimate_training(10, 100.0, 200, replace(s, medusa_train_step_s=None)).train_s is None
    recorded_k3 = replace(s, medusa_train_heads=3)
    assert runplan.estimate_training(10, 100.0, 200, recorded_k3, heads=6).train_s == pytest.approx(600.0)
    example = json.loads(views.example_results_path().read_text())
    training = (example["manifest"]["models"].get("drafters") or {}).get("medusa", {}).get("training")
    if training:  # the recorded example trained heads: its step time comes through
        assert speeds_from_results(example).medusa_train_step_s == pytest.approx(
            training["train_s"] / training["steps"])


def test_setup_estimate_counts_conversion_only_when_not_cached(tmp_path, monkeypatch, tiny_model_dirs):
    monkeypatch.setenv(config.CACHE_ENV_VAR, str(tmp_path / "empty"))
    cfg = runplan.run_config(target=config.BUNDLED_TARGET, draft=[config.BUNDLED_DRAFT], methods=["draft"],
                             draft_lengths=[2], max_new_tokens=8)
    cold = runplan.setup_estimate(cfg, loaded=False)
    sizes = sum(b.size for b in bundled.BUNDLES.values())
    assert cold.converting == (config.BUNDLED_TARGET, config.BUNDLED_DRAFT) and not cold.unknown
    assert cold.convert_s == pytest.approx(sizes / config.CONVERT_BYTES_PER_S) and cold.load_s > 0
    assert runplan.setup_estimate(replace(cfg, methods=("prompt-lookup",)), False).converting == (config.BUNDLED_TARGET,)
    assert runplan.setup_estimate(cfg, loaded=True).total_s == 0
    local = runplan.setup_estimate(replace(cfg, target=str(tiny_model_dirs[0]), drafts=("org/some-hub-model",)), False)
    assert local.convert_s == 0 and local.load_s > 0 and local.unknown == ("org/some-hub-model",)


def test_cancel_during_a_conversion_leaves_no_cache_entry(tmp_path, monkeypatch):
    """Cancel while the measuring process converts a .gguf: it stops at once (SIGINT), the job ends
    'interrupted', and neither a finished entry nor a half-written one is left in the cache."""
    import slowload
    from test_models import write_tiny_gguf
    import tiny
    gguf = tmp_path / "slow.gguf"
    write_tiny_gguf(gguf, tiny.tiny_qwen2(seed=7), tiny.tiny_tokenizer())
    monkeypatch.setenv(config.CACHE_ENV_VAR, str(tmp_path / "cache"))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # so the child can unpickle slowload
    w = worker.Worker(store_factory=functools.partial(Store, tmp_path / "r.sqlite"),
                      load_with_drafts=slowload.load_with_drafts, log_dir=tmp_path / "logs")
    try:
        w.start_calibration(runplan.run_config(target=str(gguf), draft=[], methods=["prompt-lookup"],
                                               draft_lengths=[2], max_new_tokens=4, dtype="float32", device="cpu"))
        deadline = time.monotonic() + 60
        while not ("de-quantise" in w.status().detail and 0 < (w.status().fraction or 0) < 1) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        s = w.status()  # the loader holds here (tests/slowload.py) until the cancel lands
        assert s.busy and 0 < (s.fraction or 0) < 1 and "converting slow.gguf" in s.detail, s
        w.cancel()
        assert w.join(30) and w.status().state == "interrupted"
        # Stopped by SIGINT, not by the terminate CANCEL_GRACE_S later: the measuring process is still there.
        assert w._child is not None and w._child.alive()  # noqa: SLF001
        left = [p.name for p in (tmp_path / "cache" / "models").iterdir() if not p.name.endswith(".lock")]
        assert left == []  # no .tmp-* work dir, no entry: the next use converts from scratch
    finally:
        w.close()
