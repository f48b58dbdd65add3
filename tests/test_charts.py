"""Charts: every figure of the brief from the recorded tiny-model run, and that each shows the analysis' numbers."""

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from specdec import config, results
from specdec.analysis import summary as analysis
from specdec.present import chart_style, charts, deploy_charts
from specdec.analysis import decision
from specdec.analysis import hardware

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_run" / "results.json"


@pytest.fixture(scope="module")
def a():
    return analysis.analyze(results.load(FIXTURE), n_boot=300)


@pytest.fixture(scope="module")
def figs(a):
    return charts.figures(a, decision.decide(a))


def _traces(fig, kind):
    return [t for t in fig.data if t.type == kind]


def test_fixture_is_a_real_small_run():
    r = results.load(FIXTURE)
    assert FIXTURE.stat().st_size < 300_000
    assert len(r["prompts"]) == 12 and len({p["category"] for p in r["prompts"]}) == 3
    assert r["manifest"]["status"] == "complete" and r["manifest"]["settings"]["draft_lengths"] == [1, 2, 4]


def test_figures_returns_every_chart_by_name(figs):
    assert tuple(figs) == charts.CHART_NAMES
    for name, fig in figs.items():
        assert isinstance(fig, go.Figure), name
        assert len(fig.data) > 0, name
        assert fig.layout.title.text, name
        assert "DejaVu" in fig.layout.font.family  # the font that has γ α τ ≥ ×


def test_category_chart_shows_each_methods_best_gamma_with_its_ci(a):
    fig = charts.category_chart(a.summary_by_category, a.summary)
    best = charts.best_per_method(pd.concat([a.summary_by_category, a.summary]))
    markers = [t for t in fig.data if t.mode == "markers"]
    assert {t.name for t in markers} == {"draft", "prompt-lookup"}
    for t in markers:
        b = best[best["method"] == t.name]
        assert np.allclose(t.x, b["speedup"])
        # A category with fewer than MIN_CI_PROMPTS prompts has no interval: no bar (0), not a made-up one.
        assert np.allclose(np.asarray(t.error_x.array), (b["speedup_hi"] - b["speedup"]).fillna(0.0))
        assert np.allclose(np.asarray(t.error_x.arrayminus), (b["speedup"] - b["speedup_lo"]).fillna(0.0))
        for _, r in b.iterrows():  # the chosen γ: the highest CI lower bound, else (no CI) the highest speedup
            rows = a.summary_by_category if r["category"] != "all" else a.summary
            rows = rows[(rows["method"] == t.name) & (rows["category"] == r["category"])]
            if rows["speedup_lo"].notna().any():
                assert r["speedup_lo"] == rows["speedup_lo"].max()
            else:
                assert r["speedup"] == rows["speedup"].max()
    lines = [s.x0 for s in fig.layout.shapes if s.type == "line"]
    assert 1.0 in lines and config.MIN_SPEEDUP_LO in lines  # break-even and the decision's bar
    assert fig.layout.xaxis.type == "log"
    labels = list(fig.layout.yaxis.ticktext)
    assert len(labels) == 4 and "all prompts" in labels[0]


def test_gamma_chart_measured_points_and_projected_curve(a):
    fig = charts.gamma_chart(a.summary, a.projection)
    meas = {t.name: t for t in fig.data if t.mode == "markers" and t.xaxis == "x2"}
    row = a.summary[(a.summary["method"] == "draft")].sort_values("draft_length")
    assert list(meas["draft: measured"].x) == [1, 2, 4]
    assert np.allclose(meas["draft: measured"].y, row["speedup"])
    proj = [t for t in fig.data if t.mode == "lines" and t.xaxis == "x" and t.name == "draft: projected"][0]
    p = a.projection[(a.projection["method"] == "draft") & ~a.projection["extrapolated"]]
    assert np.allclose(proj.y, p["tau"])
    dotted = [t for t in fig.data if t.line.dash == "dot"]
    assert dotted and max(max(t.x) for t in dotted) == config.PROJECTION_MAX_GAMMA
    assert any(s.y0 == 1.0 for s in fig.layout.shapes)  # break-even


def test_acceptance_chart_per_position_with_iid_reference(a):
    fig = charts.acceptance_chart(a.positions)
    pos = a.positions[(a.positions["method"] == "draft") & (a.positions["draft_length"] == 4)]
    t = [t for t in fig.data if t.name == "γ = 4" and t.xaxis == "x"][0]
    assert list(t.x) == [1, 2, 3, 4] and np.allclose(t.y, pos["p_ge"])
    iid = [t for t in fig.data if t.name.startswith("i.i.d.") and t.xaxis == "x"][0]
    assert np.allclose(iid.y, pos["alpha"].iloc[0] ** np.arange(1, 5))
    assert fig.layout.yaxis.range[0] == 0


def test_distribution_chart_one_point_per_prompt_and_win_share(a):
    fig = charts.distribution_chart(a.prompts)
    boxes = _traces(fig, "box")
    assert len(boxes) == 6 and all(len(b.y) == 12 for b in boxes)
    # Hand-made prompts with hand-counted win shares: draft 2 of 4 faster, prompt lookup 3 of 4.
    hand = pd.DataFrame({"prompt_id": ["p1", "p2", "p3", "p4"] * 2, "category": ["c"] * 8,
                         "method": ["draft"] * 4 + ["prompt-lookup"] * 4, "draft_length": [2] * 8,
                         "speedup": [0.9, 1.2, 1.5, 0.8, 1.1, 1.3, 1.2, 0.7]})
    fig = charts.distribution_chart(hand)
    assert sorted(x.text for x in fig.layout.annotations) == ["50% faster", "75% faster"]
    assert {b.meta: list(b.y) for b in _traces(fig, "box")} == {"draft": [0.9, 1.2, 1.5, 0.8],
                                                                "prompt-lookup": [1.1, 1.3, 1.2, 0.7]}


def test_throughput_chart_decode_rate_is_1000_over_ms_per_token(a):
    fig = charts.throughput_chart(a.summary)
    dec = _traces(fig, "bar")[0]
    assert dec.x[0] == "baseline"
    base = a.summary[a.summary["method"] == "baseline"].iloc[0]
    assert dec.y[0] == pytest.approx(1000 / base["tpot_ms"])
    assert len(dec.x) == 7  # baseline + 2 methods × 3 γ


def test_costs_chart_shows_c_and_the_verify_curve(a):
    fig = charts.costs_chart(a.costs)
    c = _traces(fig, "bar")[0]
    assert dict(zip(c.x, c.y)) == pytest.approx(a.costs.c)
    mean = [t for t in fig.data if t.name == "verify, measured mean"][0]
    assert np.allclose(mean.y, a.costs.verify["ratio"])


def _grid(speedups):
    rows = [{"hardware": "L4", "method": "draft", "context_len": 100.0, "batch_size": b, "gamma": g,
             "speedup": s, "fits_memory": b < 256}
            for (b, g), s in speedups.items()]
    return pd.DataFrame(rows)


def test_payoff_chart_heat_map_and_break_even_contour():
    batches, gammas = (1, 8, 64, 256), (1, 2, 3)
    df = _grid({(b, g): 2.0 / (1 + b / 32) * (1 + 0.1 * g) for b in batches for g in gammas})
    fig = deploy_charts.payoff_chart(df, "L4", "draft", max_gamma_run=2)
    heat = _traces(fig, "heatmap")[0]
    z = np.asarray(heat.z, dtype=float)
    assert z.shape == (3, 4)
    assert np.isnan(z[:, -1]).all()  # batch 256 does not fit: left blank
    assert z[0, 0] == pytest.approx(np.log2(2.0 / (1 + 1 / 32) * 1.1))
    assert list(fig.layout.xaxis.ticktext) == ["1", "8", "64", "256"]
    contour = _traces(fig, "contour")
    assert contour and contour[0].contours.start == 0 == contour[0].contours.end  # log2(1×) = 0
    assert any(s.y0 == 2.5 for s in fig.layout.shapes)  # above γ=2: extrapolated
    # Every cell above break-even: no contour to draw.
    fig = deploy_charts.payoff_chart(_grid({(b, g): 1.5 for b in batches for g in gammas}), "L4", "draft")
    assert not _traces(fig, "contour")


def test_payoff_data_is_the_hardware_whatif(a):
    df = charts.payoff_data(a, "A100-80GB", "draft", batch_sizes=(1, 16))
    assert set(df["hardware"]) == {"A100-80GB"} and set(df["method"]) == {"draft"}
    ref = hardware.whatif(a, hardware=["A100-80GB"], batch_sizes=(1, 16), methods=["draft"])
    assert np.allclose(df["speedup"], ref["speedup"])


def test_okabe_ito_colours_and_one_colour_per_method(figs):
    palette = set(chart_style.OKABE_ITO.values()) | {chart_style.METHOD_COLOURS["baseline"]}
    for name in ("categories", "gamma"):
        for t in figs[name].data:
            colour = t.marker.color if t.mode == "markers" else t.line.color
            if isinstance(colour, str):
                assert colour in palette, (name, t.name, colour)
    cat = {t.meta: t.marker.color for t in figs["categories"].data}  # legends show labels; meta keeps the key
    assert cat["draft"] == chart_style.METHOD_COLOURS["draft"]
    assert cat["prompt-lookup"] == chart_style.METHOD_COLOURS["prompt-lookup"]


def test_empty_inputs_give_a_figure_that_says_why():
    fig = charts.acceptance_chart(pd.DataFrame())
    assert "no speculative rounds" in fig.layout.annotations[0].text
    assert "no what-if" in deploy_charts.payoff_chart(pd.DataFrame()).layout.annotations[0].text
    empty = pd.DataFrame(columns=["method", "draft_length", "category", "speedup", "speedup_lo", "speedup_hi",
                                  "n_prompts"])
    assert "no speculative" in charts.category_chart(empty).layout.annotations[0].text


def test_primary_method_prefers_the_decision():
    """Hand-made summary: prompt lookup is the fastest decidable method; the training-prompt and lossy
    figures are faster still but must never be chosen; a decision's configuration wins over all."""
    from types import SimpleNamespace
    summary = pd.DataFrame({"method": ["baseline", "draft", "prompt-lookup", "medusa:train", "medusa:typical"],
                            "draft_length": [0, 4, 4, 2, 2], "speedup": [1.0, 1.3, 1.6, 2.5, 3.0]})
    a = SimpleNamespace(summary=summary)
    assert charts.primary_method(a) == "prompt-lookup"
    assert charts.primary_method(a, SimpleNamespace(config={"method": "draft", "draft_length": 4})) == "draft"
    assert charts.primary_method(a, SimpleNamespace(config=None)) == "prompt-lookup"
    # A verdict about a deployment without a configuration to apply: the method its target was judged on.
    judged = SimpleNamespace(config=None, evidence={"target": {"method": "draft"}})
    assert charts.primary_method(a, judged) == "draft"
    assert charts.primary_method(SimpleNamespace(summary=summary[summary["method"] == "baseline"])) is None


def test_payoff_chart_frames_the_batch_the_reader_picked():
    fig = deploy_charts.payoff_chart(_grid({(b, g): 1.5 for b in (1, 2, 4, 8) for g in (1, 2, 3)}), "L4", "draft",
                                     highlight_batch=4)
    (frame,) = [s for s in fig.layout.shapes if s.type == "rect"]
    assert (frame.x0, frame.x1) == (1.5, 2.5)  # log2(4) ± half a column
    assert not [s for s in deploy_charts.payoff_chart(
        _grid({(b, g): 1.5 for b in (1, 2) for g in (1, 2)}), "L4", "draft").layout.shapes if s.type == "rect"]
