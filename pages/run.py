"""Step 2 — Run: the models, what to measure, how long it will take; then the measurement, live."""

import streamlit as st

from pages import ui
from specdec import config, runplan
from specdec.errors import SpecdecError

st.title("2 · Run")
workload, total = ui.current_workload()
if workload is None:
    st.warning("Choose a workload first.")
    st.page_link(ui.PAGES["workload"], label="Go to the Workload page", icon=":material/upload_file:")
    st.stop()
st.caption(f"Workload **{workload.name}**: {len(workload.prompts)} of {total} prompts "
           f"({len(workload.categories())} categories) — change the sample on the Workload page.")
job = ui.worker().status()

st.selectbox("Preset", [*runplan.PRESETS, "custom"], key="run_preset", persist_state="session", on_change=ui.apply_preset,
             format_func=lambda k: runplan.PRESETS[k].label if k in runplan.PRESETS else "Custom")
if st.session_state["run_preset"] in runplan.PRESETS:
    st.caption(runplan.PRESETS[st.session_state["run_preset"]].description)

st.subheader("Models")
models_help = ("A bundled name, a Hugging Face hub id (owner/name; downloaded once if the network allows), a local "
               "model directory, or a .gguf file. Target and draft must share a tokenizer.")
c = st.columns(2)
c[0].text_input("Target model (the one you serve)", key="run_target", persist_state="session", help=models_help)
c[1].text_input("Draft model (proposes tokens)", key="run_draft", persist_state="session", help=models_help,
                disabled="draft" not in st.session_state["run_methods"])

st.subheader("What to measure")
c = st.columns([2, 2, 1])
c[0].multiselect("Methods", list(config.METHODS), key="run_methods", persist_state="session", on_change=ui.mark_custom,
                 help="draft: a smaller model drafts γ tokens; prompt-lookup: copy the continuation of an n-gram "
                      "already in the prompt (no second model). Every prompt also runs the plain baseline.")
c[1].multiselect("Draft lengths γ to measure", list(range(1, config.MAX_DRAFT_LENGTH + 1)), key="run_gammas", persist_state="session",
                 on_change=ui.mark_custom,
                 help="Tokens drafted per verify pass. Other γ values are projected from these on the Explore page.")
c[2].number_input("Max new tokens", min_value=1, max_value=4096, step=16, key="run_max_new", persist_state="session", on_change=ui.mark_custom)

c = st.columns([2, 1, 1, 1])
decoding = c[0].radio("Decoding", ["greedy", "sampling"], key="run_decoding", persist_state="session", horizontal=True,
                      help="Greedy: outputs must match the baseline token for token (a losslessness check). "
                           "Sampling: the acceptance you get at your serving temperature.")
if decoding == "sampling":
    c[1].slider("Temperature", 0.05, 2.0, step=0.05, key="run_temperature", persist_state="session")
    c[2].slider("Top-p", 0.05, 1.0, step=0.05, key="run_top_p", persist_state="session")
    c[3].number_input("Top-k (0 = off)", min_value=0, max_value=1000, key="run_top_k", persist_state="session")
with st.expander("Advanced"):
    c = st.columns(4)
    c[0].number_input("Seed", min_value=0, max_value=2**31 - 1, key="run_seed", persist_state="session")
    c[1].selectbox("dtype", ["auto", "bfloat16", "float32"], key="run_dtype", persist_state="session",
                   help="auto: bfloat16 where the CPU/GPU computes it natively (≈ 2.5× faster on this kind of CPU), "
                        "else float32. float32 makes greedy outputs match the baseline exactly.")
    c[2].selectbox("Device", ["auto", "cpu", "cuda", "mps"], key="run_device", persist_state="session")
    c[3].checkbox("Trust remote code", key="run_trust", persist_state="session", help="Allow model code from the hub (only for models you trust).")

try:
    cfg = ui.run_config(len(workload.prompts) if len(workload.prompts) < total else None)
except SpecdecError as exc:
    st.error(str(exc))
    cfg = None

st.subheader("Estimated time")
speeds = ui.speeds_for(cfg) if cfg else None
if cfg and speeds:
    prompt_tokens = runplan.approx_prompt_tokens([len(p.input_text) for p in workload.prompts])
    est = runplan.estimate_run(cfg, len(workload.prompts), prompt_tokens, speeds)
    c = st.columns([1, 3])
    c[0].metric("Estimated run time", runplan.format_duration(est.total_s))
    c[1].caption(f"Between {runplan.format_duration(est.low_s)} and {runplan.format_duration(est.high_s)} "
                 f"depending on acceptance; speeds from {est.source}. Model loading is not included; "
                 "generations that stop early make it shorter.")
    with c[1].expander("Per prompt, by configuration"):
        st.dataframe({"configuration": list(est.by_config), "seconds": [round(v, 1) for v in est.by_config.values()]},
                     hide_index=True)
elif cfg:
    st.info("The estimate needs the speed of these models on this machine. **Load and time models** loads them "
            "(they stay loaded for the run) and times a short decode: a few seconds once loaded.")
if cfg and st.button("Load and time models", disabled=job.busy, icon=":material/timer:"):
    try:
        ui.worker().start_calibration(cfg, bool(st.session_state["run_trust"]))
        st.rerun()
    except SpecdecError as exc:
        st.error(str(exc))

st.subheader("Measure")
if st.button("Start run", type="primary", disabled=job.busy or cfg is None, icon=":material/play_arrow:"):
    try:
        ui.worker().start_run(cfg, workload, bool(st.session_state["run_trust"]))
        st.rerun()
    except SpecdecError as exc:
        st.error(str(exc))


@st.fragment(run_every=1.0)
def live_progress():
    status = ui.worker().status()
    if not status.busy:
        st.rerun()
    st.markdown(f"**{status.label}**")
    ui.job_progress(status)
    st.button("Cancel", on_click=ui.worker().cancel, disabled=status.cancel_requested, icon=":material/stop:")


job = ui.worker().status()
if job.busy:
    live_progress()
else:
    ui.job_outcome(job)
    if job.kind == "run" and job.run_id:
        if st.button("Explore this run", on_click=ui.open_run, args=(job.run_id,), icon=":material/query_stats:"):
            st.switch_page(ui.PAGES["explore"])
