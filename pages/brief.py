"""Step 4 — Decision brief: the verdict for the active run, why, per segment, and what to configure;
the thresholds it is judged by; downloads (PDF brief, results.json, per-prompt CSV)."""

import streamlit as st

from pages import html_views, ui
from specdec import config
from specdec.analysis import decision
from specdec.analysis import deploy
from specdec.analysis import hardware
from specdec.errors import SpecdecError
from specdec.present import report
from specdec.present import views

ui.enter("brief")
st.title("4 · Decision brief")
source = ui.source_picker()
results, a = ui.active_run(source)

with st.expander("Decision thresholds", expanded=False, icon=":material/tune:"):
    c = st.columns(3)
    thresholds = decision.Thresholds(
        min_speedup_lo=c[0].number_input("Speedup bar: CI lower bound ≥ (×)", 1.0, 3.0, step=0.01,
                                         key="th_speedup", persist_state="session", help="a segment is on when the lower end of its speedup "
                                                                "confidence interval reaches this"),
        min_prompts=c[1].number_input("Prompts for a confident verdict", 1, 10000, step=1,
                                      key="th_prompts", persist_state="session"),
        min_prompts_per_segment=c[2].number_input("Prompts for a category's own verdict", 1, 10000,
                                                  step=1, key="th_segment", persist_state="session"),
        min_projected_speedup=c[0].number_input("Projected speedup bar per batch size (×)", 1.0, 3.0,
                                                step=0.01, key="th_projected", persist_state="session"),
        min_identical_rate=c[1].number_input("Greedy float32 runs matching the baseline ≥", 0.0, 1.0,
                                             step=0.01, key="th_identical", persist_state="session"),
        ci_halfwidth=c[2].number_input("Target CI half-width (×)", 0.005, 1.0, step=0.005,
                                       format="%.3f", key="th_halfwidth", persist_state="session"),
    )
    hw = c[0].selectbox("Project onto hardware", list(hardware.PROFILES) + [hardware.THIS_MACHINE], key="th_hw", persist_state="session")
    # The deployment target the verdict is about: engine + hardware (above) × TP + concurrency range.
    engine = c[1].selectbox("Serving engine", list(hardware.ENGINES), key="th_engine", persist_state="session")
    tp = c[2].number_input("GPUs per replica (tensor parallel)", 1, 16, step=1, key="th_tp", persist_state="session")
    conc = c[0].text_input("Concurrency range", "1" if hw == hardware.THIS_MACHINE else "1-64", key="th_conc",
                           help="concurrent sequences the target serves, e.g. 1-64")

try:
    dep = deploy.parse_deploy(hw, engine, int(tp), conc)
except SpecdecError as exc:
    st.error(str(exc))
    st.stop()
d = ui.decision_of(source, a, thresholds, hw, dep, deploy.engine_levels_for(results, dep))
ui.verdict(d)
st.markdown("\n".join(f"{i}. {r}" for i, r in enumerate(d.reasons, 1)))

st.subheader("Segments")
st.dataframe(views.segment_rows(d, a), hide_index=True, width="stretch")
if len(a.methods) > 1:
    st.subheader("Methods compared")
    st.dataframe(views.method_table(a), hide_index=True, width="stretch", column_config=html_views.COMPARE_COLUMNS)
    st.markdown("**Best choice per category** — the fastest method × γ measured in each; the verdict above also "
                "asks for a CI lower bound above the bar")
    st.dataframe(views.best_choice_rows(a), hide_index=True, width="stretch", column_config=html_views.COMPARE_COLUMNS)
if d.snippets:
    st.subheader(f"Configuration to apply: {a.label(d.config['method'])}, γ = {d.config['draft_length']}")
    for tab, (engine, text) in zip(st.tabs(list(d.snippets)), d.snippets.items()):
        tab.code(text, language="bash" if engine != "transformers" else "python")

st.subheader("Downloads")
name = views.run_facts(results["manifest"])["run_id"]
pdf_name = report.brief_filename(results["manifest"])
row = st.container(horizontal=True)
row.download_button("PDF brief", data=ui.brief_pdf_builder(a, d), file_name=pdf_name,
                     mime="application/pdf", icon=":material/picture_as_pdf:", type="primary")
row.download_button("results.json", data=ui.results_json(results), file_name=f"results-{name}.json",
                     mime="application/json", icon=":material/data_object:")
row.download_button("Per-prompt metrics (CSV)", data=views.prompt_metrics_csv(a), file_name=f"prompts-{name}.csv",
                     mime="text/csv", icon=":material/table:")
st.caption(f"Thresholds default to specdec's ({config.MIN_SPEEDUP_LO:g}× bar, {config.MIN_PROMPTS} prompts); the PDF "
           "uses the thresholds and hardware chosen above.")
