"""Step 3 — Explore: what one run measured, what other draft lengths and hardware would do, and
how the draft-then-verify cycle played out prompt by prompt. Everything is read from stored results."""

import streamlit as st

from pages import html_views, ui
from specdec import config
from specdec.present import charts, deploy_charts
from specdec.analysis import compare
from specdec.analysis import engine as engine_analysis, engine_check
from specdec.analysis import hardware
from specdec.analysis.projection import largest_gamma_run
from specdec.present import views
from specdec.errors import SpecdecError

ui.enter("explore")
st.title("3 · Explore")
source = ui.source_picker()


def engine_panel(results: dict, a) -> None:
    """An engine run in this results.json (engine-run, or the Run page's engine backend): verdict, chart, and
    the what-if checked against it (a: the in-process Analysis, None for an engine-only file)."""
    eng = results["engine"]
    with st.expander(f"Measured on the serving engine: {eng['engine']}", expanded=True):
        st.caption(eng["decision"]["headline"])
        if engine_analysis.status_note(eng):
            st.warning(engine_analysis.status_note(eng))
        st.plotly_chart(deploy_charts.engine_chart(eng), key="engine_chart")
        cats = engine_analysis.categories_by_gamma(eng)
        if cats:
            st.markdown("**Acceptance per category** — the engine's per-response fields, pooled over concurrency")
            st.dataframe(views.engine_category_rows(cats), hide_index=True, width="stretch")
        check = engine_check.projected_vs_measured(results, a)
        if check["rows"]:
            st.markdown("**The what-if checked against this engine run** — projected vs measured throughput ratio")
            st.dataframe(views.engine_check_rows(check), hide_index=True, width="stretch")
            st.caption(f"Profile: {check['note']}; the speculative side stays out of sample.")
        else:
            st.caption(f"What-if vs this engine run: not checked — {check['note']}.")


def engine_only(source) -> dict | None:
    """The results of a file that holds an engine run and no in-process prompts (nothing else to analyse)."""
    try:
        results = ui.results_of(source) if source is not None else None
    except SpecdecError:
        return None  # load_active says why
    return results if results and results.get("engine") and not results["prompts"] else None


only = engine_only(source)
if only is not None:
    ui.run_banner(source, only["manifest"])
    engine_panel(only, None)
    st.stop()
results, a = ui.active_run(source)
if results.get("engine"):  # an engine run merged into this results.json (python -m specdec engine-run)
    engine_panel(results, a)

projected = set(a.projection["method"])
methods = [m for m in a.methods if m in projected]  # every method key, in display order
if not methods:
    st.info("This run has no speculative generations yet: only the baseline has been measured.")
    st.stop()
best = views.best_measured(a)
if best is None:
    st.info("No speculative configuration has a measured speedup yet.")
    st.stop()
c = st.columns(4)
c[0].metric("Prompts", len(a.measurements.prompts))
c[1].metric("Baseline (ms/token)", f"{a.costs.target_step_s * 1e3:.1f}")
c[2].metric("Best measured speedup", f"{best['speedup']:.2f}×",
            views.config_label(a, (best["method"], best["draft_length"])),
            delta_color="off", delta_arrow="off",
            help=f"decode speedup; 95% CI {best['speedup_lo']:.2f}–{best['speedup_hi']:.2f}× over prompts")
c[3].metric("Its τ (tokens per pass)", f"{best['tau']:.2f}", help="tokens per target pass, bonus included")

drafters = a.drafters
gamma_tab, methods_tab, payoff_tab, category_tab, prompt_tab, cycle_tab, more_tab = st.tabs(
    ["Draft length γ", "Methods", "Where it pays off", "Categories", "Prompts", "Draft → verify cycle", "More charts"])

with methods_tab:
    st.caption("Every method measured, each at its fastest γ: decode speedup with its 95% CI, and the memory it "
               "adds beside the target (weights only drafting needs + its own KV cache for one sequence).")
    st.plotly_chart(charts.methods_chart(compare.methods_table(a)), key="methods_chart")
    st.dataframe(views.method_table(a), hide_index=True, width="stretch", column_config=html_views.COMPARE_COLUMNS)
    st.markdown("**Best choice per category** — the fastest method × γ measured in each")
    st.dataframe(views.best_choice_rows(a), hide_index=True, width="stretch", column_config=html_views.COMPARE_COLUMNS)

with gamma_tab:
    st.caption("Move γ: τ, speedup and latency are re-projected from the per-position acceptance and the "
               "measured costs of this run — no new decoding. Points on the chart are measured.")
    c = st.columns([1, 3])
    ui.keep_choice("ex_method", methods, best["method"])
    method = c[0].radio("Method", methods, format_func=a.label, key="ex_method", persist_state="session")
    lo, hi = views.gamma_range(a, method)
    ui.keep_choice("ex_gamma", range(lo, hi + 1), int(best["draft_length"]))
    gamma = c[1].slider("Draft length γ", lo, hi, key="ex_gamma", persist_state="session")
    point = views.gamma_point(a, method, gamma)
    m = point["measured"]
    c = st.columns(4)
    c[0].metric(f"τ at γ={gamma}", f"{point['tau']:.2f}", help="tokens emitted per target pass, bonus included")
    c[1].metric("Speedup", f"{point['speedup']:.2f}×", f"{point['speedup'] - 1:+.0%} vs baseline",
                delta_color="normal")
    c[2].metric("Latency (ms/token)", f"{point['ms_per_token']:.1f}",
                f"{point['ms_per_token'] - point['base_ms_per_token']:+.1f} ms", delta_color="inverse")
    c[3].metric("Baseline (ms/token)", f"{point['base_ms_per_token']:.1f}")
    if m:
        st.caption(views.measured_at_text(m, gamma))
    elif point["extrapolated"]:
        st.caption(f"Projected beyond every γ run (largest: {point['gamma_source']}): acceptance past it is "
                   "extrapolated from the deepest positions measured — treat with caution.")
    else:
        st.caption(f"Projected: γ={gamma} was not run; its rounds are the γ={point['gamma_source']} rounds cut at "
                   f"{gamma} tokens (exact, since drafts are autoregressive).")
    fig = charts.gamma_chart(a.summary, a.projection, drafters=drafters)
    fig.add_vline(x=gamma, line=dict(color="#555", width=1, dash="dot"), row="all", col="all")
    st.plotly_chart(fig, key="gamma_chart")

with payoff_tab:
    st.caption("The measured acceptance, projected onto serving hardware: batching makes the target "
               "compute-bound, where verifying γ + 1 tokens stops being free.")
    c = st.columns(4)
    profiles = list(hardware.PROFILES) + [hardware.THIS_MACHINE]
    hw = c[0].selectbox("Hardware", profiles, key="ex_hw", persist_state="session")
    ui.keep_choice("ex_pay_method", methods, best["method"])
    pay_method = c[1].selectbox("Method", methods, format_func=a.label, key="ex_pay_method", persist_state="session")
    batch = c[2].select_slider("Batch size", list(config.WHATIF_BATCH_SIZES), key="ex_batch", persist_state="session")
    context = c[3].number_input("Context length (tokens)", min_value=16, max_value=262144, step=256,
                                value=int(round(a.memory["context_tokens"])), key=f"ex_context_{source.ident}",
                                help="KV-cache tokens read per sequence per step; default: this run's mean "
                                     "prompt + max new tokens")
    try:
        wi = ui.whatif_of(source, a, hw, pay_method, context)
    except SpecdecError as exc:
        st.error(str(exc))
        wi = None
    if wi is not None and len(wi):
        at = views.whatif_at(wi, batch, config.MIN_PROJECTED_SPEEDUP)
        c = st.columns(3)
        if at and at["gamma"] is not None:
            c[0].metric(f"Best γ at batch {batch}", at["gamma"])
            c[1].metric("Projected speedup", f"{at['speedup']:.2f}×")
            c[2].metric("Saving (ms/token)", f"{at['saving_ms_per_token']:.2f}",
                        help=f"baseline {at['base_ms_per_token']:.2f} ms/token; target step {at['bound']}-bound")
        elif at and at["fits"]:
            c[0].metric(f"Best γ at batch {batch}", "off")
            c[1].metric("Best projected speedup", f"{at['best_speedup']:.2f}×",
                        help=f"below the {config.MIN_PROJECTED_SPEEDUP:g}× bar: leave speculation off")
        else:
            c[0].metric(f"Batch {batch}", "does not fit", help="weights + KV cache exceed the device memory")
        g_run = largest_gamma_run(a.prompts, pay_method)
        st.plotly_chart(deploy_charts.payoff_chart(wi, hw, pay_method, g_run, drafters, highlight_batch=batch),
                        key="payoff_chart")
        with st.expander("Assumptions"):
            st.dataframe([{"assumption": x["name"], "value": str(x["value"]), "note": x["note"]}
                          for x in wi.attrs.get("assumptions", [])], hide_index=True)

with category_tab:
    st.plotly_chart(charts.category_chart(a.summary_by_category, a.summary, drafters=drafters), key="category_chart")
    cats = sorted(a.measurements.prompts["category"].unique())
    ui.keep_choice("ex_cat", cats, cats[0])
    cat = st.selectbox("Category", cats, key="ex_cat", persist_state="session")
    st.dataframe(views.category_summary(a, cat), hide_index=True, width="stretch", column_config=html_views.SUMMARY_COLUMNS)
    st.plotly_chart(charts.gamma_chart(a.summary_by_category, a.projection_by_category, cat, drafters),
                    key="cat_gamma")
    st.plotly_chart(charts.acceptance_chart(a.positions_by_category, cat, drafters), key="cat_accept")

configs = views.configurations(results)
label = lambda mg: views.config_label(a, mg)  # noqa: E731

with prompt_tab:
    ui.keep_choice("ex_config", configs, (best["method"], int(best["draft_length"])))
    pick = st.selectbox("Configuration", configs, format_func=label, key="ex_config", persist_state="session")
    rows = views.prompt_rows(a, results, *pick)
    st.dataframe(rows[["id", "category", "measured", "speedup", "tau", "tpot_ms", "base_tpot_ms", "identical",
                       "first_divergence"]],
                 hide_index=True, width="stretch",
                 column_config={"speedup": st.column_config.NumberColumn(format="%.2f×"),
                                "tau": st.column_config.NumberColumn("τ", format="%.2f"),
                                "tpot_ms": st.column_config.NumberColumn("ms/token", format="%.1f"),
                                "base_tpot_ms": st.column_config.NumberColumn("baseline ms/token", format="%.1f"),
                                "first_divergence": st.column_config.NumberColumn("first divergence (token)"),
                                "measured": st.column_config.TextColumn(
                                    help="real: decoded; traced: rounds derived exactly from the target's own pass "
                                         "(greedy), timed by the cost model of the real prompts")})
    ui.keep_choice("ex_prompt", list(rows["id"]), rows["id"].iloc[0])
    prompt_id = st.selectbox("Prompt to compare", list(rows["id"]), key="ex_prompt", persist_state="session")
    row = rows[rows["id"] == prompt_id].iloc[0]
    with st.expander("Prompt", expanded=False):
        st.text(row["prompt"])
    if row["identical"]:
        st.caption("Identical token ids: speculation reproduced the baseline exactly.")
    else:
        st.caption(f"The outputs part at token {int(row['first_divergence'])} (highlighted).")
    c = st.columns(2)
    c[0].markdown("**Baseline (target alone)**")
    c[0].html(html_views.diverge_html(row["baseline"], int(row["common_chars"])))
    c[1].markdown(f"**Speculative ({label(pick)})**")
    c[1].html(html_views.diverge_html(row["speculative"], int(row["common_chars"])))

with cycle_tab:
    c = st.columns([1, 2])
    ui.keep_choice("ex_cycle_config", configs, views.showcase_configuration(configs))
    cyc_pick = c[0].selectbox("Configuration", configs, format_func=label, key="ex_cycle_config", persist_state="session")
    ids = [p["id"] for p in results["prompts"]]
    ui.keep_choice("ex_cycle_prompt", ids, ids[0])
    cyc_prompt = c[1].selectbox("Prompt", ids, key="ex_cycle_prompt", persist_state="session")
    cycles = views.verify_cycles(results, cyc_prompt, *cyc_pick)
    tok = ui.tokenizer_for(results["manifest"])
    st.caption("Each row is one target verify pass: the drafted tokens, with β under each (Σ min(p, q): the "
               "probability the target accepts it), then the token the target adds itself. "
               + ("Tokens decoded with the target's tokenizer. " if tok is not None else
                  "The target's tokenizer is not available here, so tokens show as ids. ")
               + f"{len(cycles)} verify passes; the first output token comes from the prefill.")
    st.html(html_views.legend_html())
    with st.container(height=520 if len(cycles) > 10 else "content"):
        st.html(html_views.cycles_html(cycles, lambda ids: views.token_pieces(ids, tok)))

with more_tab:
    st.plotly_chart(charts.acceptance_chart(a.positions, drafters=drafters), key="accept_chart")
    st.plotly_chart(charts.distribution_chart(a.prompts, drafters), key="dist_chart")
    st.plotly_chart(charts.throughput_chart(a.summary, drafters), key="tput_chart")
    st.plotly_chart(charts.costs_chart(a.costs, drafters), key="costs_chart")
