"""Which recorded speeds price an estimate (specdec.measure.speeds): the order sources are trusted in, the
first that covers every drafter of a run, the first that recorded a Medusa training step."""

from dataclasses import replace

import pytest

from specdec.measure import runplan, speeds
from specdec.measure.speeds import Speeds
from specdec import config
from specdec.decoding import medusa
from specdec.measure.workloads import Prompt

BASE = Speeds(target_step_s=0.1, draft_step_s=0.02, verify_slope=0.0, prefill_s_per_token=0.001,
              draft_prefill_s_per_token=0.0, source="run A", draft_steps={"a": 0.02}, draft_parameters={"a": 500},
              target_parameters=2000, target_layers=28)


def test_recorded_trusts_the_example_then_stored_runs_of_the_same_target_lazily():
    runs = [{"run_id": "r1", "target": "t", "n_prompts": 4}, {"run_id": "r2", "target": "other", "n_prompts": 9},
            {"run_id": "r3", "target": "t", "n_prompts": 0}, {"run_id": "r4", "target": "t", "n_prompts": 2}]
    loaded = []

    def load_run(row):
        loaded.append(row["run_id"])
        return replace(BASE, source=row["run_id"])

    got = list(speeds.recorded("t", "t", runs, lambda: replace(BASE, source="example"), load_run))
    assert [s.source for s in got] == ["example", "r1", "r4"]  # other targets and empty runs are skipped
    assert [s.source for s in speeds.recorded("t", "x", runs, lambda: 1 / 0, load_run)] == ["r1", "r4"]
    loaded.clear()
    first = next(speeds.recorded("t", None, runs, lambda: 1 / 0, load_run))
    assert first.source == "r1" and loaded == ["r1"]  # nothing past the first is read


def test_for_run_takes_the_first_that_prices_every_drafter_else_the_first_found():
    cfg = runplan.run_config(target="t", draft="a, org/b", methods=["draft"], draft_lengths=[4], max_new_tokens=10,
                             mode="real")
    partial = replace(BASE, source="knows a only")
    full = replace(BASE, source="knows both", draft_parameters={"a": 500, "org/b": 1000})
    assert speeds.for_run(cfg, [None, partial, full]).source == "knows both"
    assert speeds.for_run(cfg, [None, partial]).source == "knows a only"  # the estimate will name org/b
    assert speeds.for_run(cfg, [None, None]) is None
    assert speeds.for_run(cfg, []) is None


def test_for_training_prefers_a_run_that_trained_heads():
    trained = replace(BASE, source="trained", medusa_train_step_s=1.5)
    assert speeds.for_training([None, BASE, trained, replace(trained, source="later")]).source == "trained"
    assert speeds.for_training([BASE, replace(BASE, source="second")]).source == "run A"
    assert speeds.for_training([None]) is None


def test_training_estimate_counts_the_training_split_and_the_held_out_prompts():
    prompts = [Prompt(id=str(i), category="c", text="x" * 35, messages=None, system=None, source_line=i + 1)
               for i in range(40)]
    s = replace(BASE, medusa_train_step_s=2.0, medusa_train_heads=2)
    te = speeds.training_estimate(prompts, steps=10, heads=4, speeds=s)
    assert te.train_s == pytest.approx(10 * 2.0 * 4 / 2)  # the recorded step scaled from K = 2 to 4 heads
    train, held = medusa.split(prompts)
    assert te.prompts == len(train) + min(len(held), config.MEDUSA_EVAL_PROMPTS)
    tokens = runplan.approx_prompt_tokens([len(p.input_text) for p in prompts])
    assert te == runplan.estimate_training(te.prompts, tokens, 10, s, heads=4)


def test_a_run_with_trained_heads_records_its_training_step_through_the_medusa_entry():
    """The Medusa training step (seconds per optimiser step) and K come from the run's medusa keys' drafter
    entries (methods/medusa.py's recorded_speeds), not from a family name looked up in speeds.py."""
    import copy
    import synthetic
    res = synthetic.make_results(synthetic.multi_spec(n_per_category=4))
    assert speeds.speeds_from_results(res).medusa_train_step_s is None  # no training summary recorded
    assert speeds.speeds_from_results(res).medusa_train_heads == 4
    trained = copy.deepcopy(res)
    trained["manifest"]["models"]["drafters"]["medusa"]["training"] = {"steps": 200, "train_s": 50.0}
    s = speeds.speeds_from_results(trained)
    assert s.medusa_train_step_s == pytest.approx(0.25) and s.medusa_train_heads == 4
    without = copy.deepcopy(trained)  # a run that measured no Medusa key prices no training from it
    without["prompts"] = [{**p, "runs": [r for r in p["runs"] if r["method"] != "medusa"]} for p in without["prompts"]]
    s = speeds.speeds_from_results(without)
    assert s.medusa_train_step_s is None and s.medusa_train_heads is None
