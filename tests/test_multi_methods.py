"""Several methods in one run (draft:a, draft:b, prompt-lookup, layer-skip:L4, medusa): analysis, costs,
hardware projection, decision, snippets, charts, views and the PDF treat every method key alike."""

import io
import json
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

import synthetic
from specdec import methods, results
from specdec.analysis import summary as analysis
from specdec.present import chart_style, charts
from specdec.analysis import compare
from specdec.analysis import costs
from specdec.analysis import decision
from specdec.analysis import hardware
from specdec.present import report
from specdec.present import snippets
from specdec.present import views

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_run" / "results.json"
KEYS = list(synthetic.MULTI_METHODS)


@pytest.fixture(scope="module")
def res():
    return synthetic.make_results(synthetic.multi_spec(n_per_category=16))


@pytest.fixture(scope="module")
def a(res):
    return analysis.analyze(res, n_boot=300)


@pytest.fixture(scope="module")
def d(a):
    return decision.decide(a, thresholds=decision.Thresholds(min_prompts=16, min_prompts_per_segment=8))


def test_old_results_derive_drafters_from_models_draft():
    manifest = results.load(FIXTURE)["manifest"]
    info = costs.drafters(manifest)
    assert list(info) == ["draft", "prompt-lookup"]
    draft = manifest["models"]["draft"]
    assert info["draft"]["parameters"] == info["draft"]["extra_parameters"] == draft["parameters"]
    assert info["draft"]["kv_layers"] == info["draft"]["num_layers"] == draft["num_layers"]
    assert info["prompt-lookup"]["parameters"] == info["prompt-lookup"]["extra_parameters"] == 0
    old = analysis.analyze(results.load(FIXTURE), n_boot=100)
    assert old.methods == ["draft", "prompt-lookup"]
    t = compare.methods_table(old)
    assert list(t["method"]) == ["draft", "prompt-lookup"] and t.loc[1, "extra_total_gb"] == 0
    assert old.memory["by_method"]["draft"]["extra_weights_gb"] == pytest.approx(old.memory["draft_weights_gb"])


def test_recorded_drafters_win_and_order_is_by_family(a):
    assert a.methods == KEYS
    assert a.drafters["draft:b"]["parameters"] == synthetic.MULTI_DRAFTERS["draft:b"]["parameters"]
    assert methods.order(["medusa", "layer-skip:L12", "draft:b", "layer-skip:L4", "prompt-lookup", "draft:a"]) == [
        "draft:a", "draft:b", "prompt-lookup", "layer-skip:L4", "layer-skip:L12", "medusa"]


def test_memory_per_method(a):
    mem = costs.memory_by_method(a.manifest, context_tokens=1000, dtype="bfloat16", keys=a.methods).set_index("method")
    assert mem.loc["layer-skip:L4", "extra_weights_gb"] == 0 and mem.loc["layer-skip:L4", "extra_total_gb"] == 0
    assert mem.loc["prompt-lookup", "extra_total_gb"] == 0
    assert mem.loc["medusa", "extra_weights_gb"] == pytest.approx(10_000_000 * 2 / 1e9)
    assert mem.loc["medusa", "extra_kv_gb_per_seq"] == 0  # MLP heads keep no KV cache
    assert mem.loc["draft:a", "extra_weights_gb"] == pytest.approx(1.0)
    assert mem.loc["draft:a", "extra_kv_gb_per_seq"] == pytest.approx(2 * 24 * 128 * 2 * 1000 / 1e9)
    assert mem.loc["draft:b", "label"] == "draft model (b)"


def test_compute_overhead_counts_medusa_once_per_round(a):
    c = a.compute.set_index(["method", "draft_length"])
    runs = a.prompts
    for key in ("medusa", "draft:a"):
        r = runs[(runs["method"] == key) & (runs["draft_length"] == 4)]
        tokens = (r["new_tokens"] - 1).clip(lower=0).sum()
        passes = sum(sum(h[1:]) for h in r["drafted_hist"]) if key == "medusa" else r["drafted"].sum()
        assert c.loc[(key, 4), "draft_positions_per_token"] == pytest.approx(passes / tokens)
    assert c.loc[("medusa", 4), "draft_positions_per_token"] < c.loc[("draft:a", 4), "draft_positions_per_token"] / 2
    assert c.loc[("draft:b", 2), "c_hat"] == pytest.approx(250 / 1500)
    assert c.loc[("layer-skip:L4", 2), "c_hat"] == pytest.approx(400 / 1500)
    assert c.loc[("prompt-lookup", 2), "c_hat"] == 0


def _mean_drafted(a, method, gamma):
    p = a.projection
    return float(p[(p["method"] == method) & (p["gamma"] == gamma) & (p["category"] == "all")]["mean_drafted"].iloc[0])


def test_whatif_uses_each_drafters_size_and_steps(a):
    w = hardware.whatif(a, hardware=["H100-SXM", hardware.THIS_MACHINE], batch_sizes=(1, 8), gammas=(1, 2, 4))
    assert set(w["method"]) == set(KEYS)
    h = w[w["hardware"] == "H100-SXM"]
    g4 = h[(h["gamma"] == 4) & (h["batch_size"] == 1)].set_index("method")
    # Forwards per round follow the rounds drafted (fewer than γ near an output's end): one heads pass per
    # round that drafted, one draft-model forward per drafted token.
    assert 0.95 <= g4.loc["medusa", "draft_steps"] <= 1
    assert g4.loc["draft:a", "draft_steps"] == pytest.approx(_mean_drafted(a, "draft:a", 4))
    assert 3.5 < g4.loc["draft:a", "draft_steps"] <= 4
    assert g4.loc["prompt-lookup", "draft_steps"] < 4 and g4.loc["prompt-lookup", "draft_step_ms"] == 0
    # A draft step is a roofline forward of that drafter: the bigger drafter reads more bytes.
    assert g4.loc["draft:a", "draft_step_ms"] > g4.loc["draft:b", "draft_step_ms"]
    for key, row in g4.iterrows():
        assert row["round_ms"] >= row["draft_steps"] * row["draft_step_ms"] + row["verify_ms"] - 1e-9
    # This machine reproduces each method's measured draft step at batch 1.
    here = w[(w["hardware"] == hardware.THIS_MACHINE) & (w["batch_size"] == 1) & (w["gamma"] == 2)].set_index("method")
    assert here.loc["draft:b", "draft_step_ms"] == pytest.approx(1e3 * a.costs.draft_step_s["draft:b"])
    assert here.loc["layer-skip:L4", "draft_step_ms"] == pytest.approx(1e3 * a.costs.draft_step_s["layer-skip:L4"])
    medusa_round = a.costs.draft_round_s["medusa"] + a.costs.draft_step_s["medusa"] * 2  # one pass drafts 2
    assert here.loc["medusa", "draft_step_ms"] == pytest.approx(1e3 * medusa_round, rel=0.02)
    assert here.loc["medusa", "draft_step_ms"] == pytest.approx(1e3 * synthetic.MULTI_COSTS.steps["medusa"], rel=0.1)


def test_memory_fit_counts_only_what_a_method_adds(a):
    target = costs.model_size(a.manifest["models"]["target"])
    tight = hardware.HardwareProfile("tight", 1000.0, 100.0, memory_gb=(target.weight_bytes("bfloat16") + 2e8) / 1e9 / 0.9)
    info = a.drafters
    assert hardware._fits(tight, target, "layer-skip:L4", info["layer-skip:L4"], 1, 100, "bfloat16")
    assert hardware._fits(tight, target, "medusa", info["medusa"], 1, 100, "bfloat16")
    assert not hardware._fits(tight, target, "draft:a", info["draft:a"], 1, 100, "bfloat16")


def test_best_per_category_picks_the_known_best(a):
    best = compare.best_per_category(a).set_index("category")
    assert best.loc["code", "method"] == "draft:a"  # accepts most there
    assert best.loc["chat", "method"] == "medusa"  # its heads accept well and it drafts in one pass
    assert best.loc["chat", "speedup_lo"] <= best.loc["chat", "speedup"] <= best.loc["chat", "speedup_hi"]
    assert best.loc["chat", "extra_total_gb"] == pytest.approx(a.memory["by_method"]["medusa"]["extra_total_gb"])
    for cat in ("code", "chat"):
        truth = {k: synthetic.true_speedup(synthetic.multi_spec().categories[cat == "chat"].rates_of(k), 4, synthetic.MULTI_COSTS, k)
                 for k in KEYS if k != "prompt-lookup"}
        assert best.loc[cat, "method"] == max(truth, key=truth.get)
    t = compare.methods_table(a)
    assert list(t["method"]) == KEYS and t["label"].is_unique


def test_decision_names_methods_by_label(a, d):
    labels = [a.label(k) for k in KEYS]
    assert d.config and d.config["method"] in KEYS and d.config["label"] == a.label(d.config["method"])
    # This spec's Medusa heads win chat clearly and stay within the noise on code: one GO for all traffic.
    assert d.verdict == "GO" and d.config["method"] == "medusa"
    assert a.label(d.config["method"]) in d.headline
    text = " ".join(d.reasons)
    assert all(lab in text for lab in labels)  # the methods-compared reason
    assert any(r.startswith("Memory price") for r in d.reasons)
    assert json.dumps(d.to_dict())  # JSON-safe with the new evidence
    assert {r["method"] for r in d.evidence["best_per_category"]} <= set(KEYS)


def test_snippets_for_every_family():
    ls = snippets.snippets("layer-skip:L4", 3, "org/t")
    assert set(ls) == {"transformers"} and "assistant_early_exit=4" in ls["transformers"]
    assert "LayerSkip" in ls["transformers"]
    md = snippets.snippets("medusa", 3, "org/t", "heads/dir")
    cfg = json.loads(re.search(r"'(\{.*\})'", md["vllm"]).group(1))
    assert cfg == {"method": "medusa", "model": "heads/dir", "num_speculative_tokens": 3}
    assert "--speculate 3" in md["tgi"] and "format" in md["tgi"]
    dr = snippets.snippets("draft:b", 2, "org/t", "org/model-b")
    assert '"model": "org/model-b"' in dr["vllm"]


def test_decision_snippet_uses_that_drafters_spec(a):
    assert decision._drafter_ref(a, "draft:b") == "org/model-b"
    assert decision._drafter_ref(a, "medusa") == "heads/medusa"
    assert decision._drafter_ref(a, "layer-skip:L4") is None


def test_charts_show_every_method_side_by_side(a, d):
    figs = charts.figures(a, d)
    labels = {a.label(k) for k in KEYS}
    assert tuple(figs) == charts.CHART_NAMES
    for name in ("categories", "gamma", "distribution"):
        shown = {t.name for t in figs[name].data if t.showlegend is not False and t.name}
        assert labels <= shown, name
    colours = chart_style.method_colours(KEYS)
    assert len({colours[k] for k in KEYS}) == len(KEYS)  # distinct
    assert set(colours.values()) <= set(chart_style.OKABE_ITO.values()) | {chart_style.METHOD_COLOURS["baseline"]}
    assert colours["draft:a"] == chart_style.FAMILY_COLOURS["draft"] and colours["medusa"] == chart_style.FAMILY_COLOURS["medusa"]
    cat = {t.meta: t.marker.color for t in figs["categories"].data}
    assert all(cat[k] == colours[k] for k in KEYS)
    m = figs["methods"]
    assert len(m.data[0].y) == len(KEYS) and all(any(lab in y for y in m.data[0].y) for lab in labels)
    assert len([a_ for a_ in figs["acceptance"].layout.annotations if a_.text.startswith("α =")]) == len(KEYS)


def test_views_list_every_method(a, d, res):
    configs = views.configurations(res)
    assert {c[0] for c in configs} == set(KEYS)
    assert views.config_label(a, ("layer-skip:L4", 2)) == "layer-skip (first 4 layers) γ=2"
    assert methods.uses_model(views.showcase_configuration(configs)[0])
    assert set(views.method_table(a)["method"]) == {a.label(k) for k in KEYS}
    rows = views.segment_rows(d, a)
    assert all(any(lab in x for lab in (a.label(k) for k in KEYS)) for x in rows["best measured"] if x)
    assert "org/model-a" in views.run_facts(a.manifest)["models"]


def test_pdf_lists_every_method(a, d):
    from pypdf import PdfReader

    pdf = report.build_brief(a, decision=d, charts_on=False, now=datetime(2026, 3, 14, tzinfo=timezone.utc))
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    text = " ".join(text.split())
    assert "Methods compared" in text and "Best choice per category" in text
    for k in KEYS:
        assert a.label(k) in text, k
    assert "org/model-b" in text and "heads/medusa" in text  # every drafter in the manifest


def test_a_method_without_recorded_size_is_left_out_of_the_projection(res):
    r = json.loads(json.dumps(res))
    del r["manifest"]["models"]["drafters"]["medusa"]
    a2 = analysis.analyze(r, n_boot=50)
    assert a2.drafters["medusa"].get("estimated")
    w = hardware.whatif(a2, hardware=["L4"], batch_sizes=(1,), gammas=(2,))
    assert "medusa" not in set(w["method"]) and "draft:a" in set(w["method"])
    assert any("estimated" in n for n in a2.memory["notes"])
    assert np.isnan(a2.compute.set_index("method").loc["medusa", "c_hat"]).all()


def test_heads_on_their_training_prompts_are_shown_but_never_chosen(res):
    import copy
    trained = copy.deepcopy(res)
    drafters = trained["manifest"]["models"]["drafters"]
    drafters["medusa:train"] = dict(drafters["medusa"])
    for p in trained["prompts"]:
        if p["category"] == "chat":  # where the heads win
            for run in p["runs"]:
                if run["method"] == "medusa":
                    run["method"] = "medusa:train"
    a2 = analysis.analyze(trained, n_boot=300)
    assert "medusa:train" in set(compare.methods_table(a2, "chat")["method"])
    assert "medusa:train" not in set(compare.best_per_category(a2)["method"])
    d2 = decision.decide(a2, thresholds=decision.Thresholds(min_prompts=16, min_prompts_per_segment=8))
    assert all(s["method"] != "medusa:train" for s in d2.segments)
    assert methods.label("medusa:train", drafters).endswith("training prompts")


def test_medusa_runs_are_labelled_by_the_gamma_they_drafted(res):
    """K heads draft at most K tokens: a run asked for γ=4 with 3 heads is a γ=3 run, and nothing is
    projected beyond K (the γ slider stops there)."""
    import copy
    three = copy.deepcopy(res)
    three["manifest"]["models"]["drafters"]["medusa"]["heads"] = 3
    for p in three["prompts"]:  # a file written before runs were capped: γ=4 and a duplicate γ=3
        extra = [dict(r, draft_length=3) for r in p["runs"] if r["method"] == "medusa" and r["draft_length"] == 4]
        p["runs"] += extra
    a3 = analysis.analyze(three, n_boot=100)
    med = a3.measurements.runs[a3.measurements.runs["method"] == "medusa"]
    assert sorted(set(med["draft_length"])) == [2, 3]
    assert len(med) == 2 * len(a3.measurements.prompts)  # the duplicate γ=3 run was dropped
    assert a3.projection.loc[a3.projection["method"] == "medusa", "gamma"].max() == 3
    assert views.gamma_range(a3, "medusa") == (1, 3)
    assert views.gamma_range(a3, "draft:a")[1] > 3
    w = hardware.whatif(a3, hardware=["L4"], batch_sizes=(1,))
    assert w.loc[w["method"] == "medusa", "gamma"].max() == 3


def test_draft_source_runs_each_gamma_medusa_can_draft_once():
    from types import SimpleNamespace

    from specdec.measure.bench import DraftSource
    assert DraftSource("medusa", heads=SimpleNamespace(num_heads=3), info={"heads": 3}).gammas((1, 2, 4, 6)) == [1, 2, 3]
    assert DraftSource("draft").gammas((1, 2, 4, 6)) == [1, 2, 4, 6]
    assert methods.max_gamma("medusa:train", {"medusa": {"heads": 3}}) == 3
    assert methods.max_gamma("draft") is None


def test_headline_best_ignores_training_prompt_figures(res):
    import copy
    trained = copy.deepcopy(res)
    trained["manifest"]["models"]["drafters"]["medusa:train"] = dict(trained["manifest"]["models"]["drafters"]["medusa"])
    for p in trained["prompts"][:8]:
        for run in p["runs"]:
            if run["method"] == "medusa":
                run["method"] = "medusa:train"
                run["decode_s"] *= 0.01  # absurdly fast on its own training prompts
    a2 = analysis.analyze(trained, n_boot=100)
    assert views.best_measured(a2, "medusa:train")["speedup"] > views.best_measured(a2)["speedup"]
    assert views.best_measured(a2)["method"] != "medusa:train"


def test_a_lossy_rule_is_shown_with_its_drift_but_never_chosen(res):
    import copy
    lossy = copy.deepcopy(res)
    lossy["manifest"]["models"]["drafters"]["medusa:typical"] = dict(lossy["manifest"]["models"]["drafters"]["medusa"])
    for p in lossy["prompts"]:
        extra = []
        for run in p["runs"]:
            if run["method"] == "medusa":
                fast = copy.deepcopy(run)
                fast.update(method="medusa:typical", decode_s=run["decode_s"] * 0.2)  # much faster…
                fast["tokens"] = fast["tokens"][:3] + [t + 1 for t in fast["tokens"][3:]]  # …and drifts at token 3
                extra.append(fast)
        p["runs"] += extra
    a2 = analysis.analyze(lossy, n_boot=100)
    assert a2.lossless["identical_rate"] == 1.0 and "medusa:typical" not in a2.lossless["by_method"]
    drift = a2.lossless["lossy"]["medusa:typical"]
    assert drift["identical_rate"] == 0.0 and drift["first_divergence_median"] == 3
    assert "medusa:typical" in set(compare.methods_table(a2)["method"])  # shown…
    assert "medusa:typical" not in set(compare.best_per_category(a2)["method"])  # …never chosen
    d2 = decision.decide(a2, thresholds=decision.Thresholds(min_prompts=16, min_prompts_per_segment=8))
    assert all(s["method"] != "medusa:typical" for s in d2.segments)
    assert views.best_measured(a2)["method"] != "medusa:typical"
    text = " ".join(d2.reasons)
    assert "typical acceptance (lossy), left out of that count: 0% of its" in text and "token 3 (median)" in text


def test_measured_at_text_says_too_few_instead_of_nan():
    from specdec.present import views
    nan = float("nan")
    few = {"n_prompts": 3, "tau": 1.75, "tau_lo": nan, "tau_hi": nan, "speedup": 0.14, "speedup_lo": nan,
           "speedup_hi": nan, "tpot_ms": 7.3}
    text = views.measured_at_text(few, 3)
    assert "nan" not in text and "too few prompts for a 95% CI" in text and "γ=3" in text and "0.14×" in text
    many = {**few, "n_prompts": 12, "tau_lo": 1.6, "tau_hi": 1.9, "speedup_lo": 1.047, "speedup_hi": 1.21}
    assert "(1.60–1.90)" in views.measured_at_text(many, 3) and "1.047–1.210×" in views.measured_at_text(many, 3)
