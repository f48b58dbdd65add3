"""Step 2 — Run: the models, what to measure, how long it will take; then the measurement, live."""

import streamlit as st

from pages import engine_form, job_status, ui
from specdec import config, methods
from specdec.decoding import medusa
from specdec.measure import runplan
from specdec.errors import SpecdecError

ui.enter("run")
st.title("2 · Run")
workload, total = ui.current_workload()
job = ui.worker().status()


@st.fragment(run_every=1.0)
def live_progress():
    status = ui.worker().status()
    if not status.busy:
        st.rerun()
    st.markdown(f"**{ui.esc(status.label)}**")
    job_status.job_progress(status)
    st.button("Cancel", on_click=ui.worker().cancel, disabled=status.cancel_requested, icon=":material/stop:")


def job_panel():
    """The background job: live while busy, then its outcome in one line."""
    if job.busy:
        live_progress()
    else:
        job_status.job_outcome(job)
        if job.kind in ("run", "engine") and job.run_id:
            if st.button("Explore this run", on_click=job_status.open_run, args=(job.run_id,), icon=":material/query_stats:"):
                st.switch_page(ui.PAGES["explore"])


if workload is None:
    st.warning("Choose a workload first.")
    st.page_link(ui.PAGES["workload"], label="Go to the Workload page", icon=":material/upload_file:")
    if job.kind is not None:  # a reload or another tab: the server's job is still shown (and can be cancelled)
        job_panel()
    st.stop()
st.caption(f"Workload **{ui.esc(workload.name)}**: {len(workload.prompts)} of {total} prompts "
           f"({len(workload.categories())} categories) — change the sample on the Workload page.")

if st.radio("Backend", ["in-process", "engine"], key="run_backend", persist_state="session", horizontal=True,
            format_func={"in-process": "In-process (PyTorch, batch 1)", "engine": "Serving engine, under load"}.get,
            help="In-process: our decoder measures acceptance and speedup per prompt. Serving engine: llama.cpp here, "
                 "or your vLLM / SGLang / llama.cpp servers, at several concurrency levels.") == "engine":
    engine_form.draw(workload, job)
    job_panel()
    st.stop()


st.selectbox("Preset", [*runplan.PRESETS, "custom"], key="run_preset", persist_state="session", on_change=ui.apply_preset,
             format_func=lambda k: runplan.PRESETS[k].label if k in runplan.PRESETS else "Custom")
if st.session_state["run_preset"] in runplan.PRESETS:
    st.caption(runplan.PRESETS[st.session_state["run_preset"]].description)

st.subheader("Models")
models_help = ("A bundled name, a Hugging Face hub id (owner/name; downloaded once if the network allows), a local "
               "model directory, or a .gguf file. Draft models must share the target's tokenizer.")
chosen = st.session_state["run_methods"]
needs = methods.options(chosen)  # the settings the chosen methods need, each shown below
c = st.columns(2)
c[0].text_input("Target model (the one you serve)", key="run_target", persist_state="session", help=models_help)
if "drafts" in needs:
    c[1].text_area("Draft models (one per line; each is measured on its own)", key="run_draft", persist_state="session",
                   height=68, help=models_help + " Add lines to compare several draft models in one run.")

st.subheader("What to measure")
c = st.columns([4, 2, 1])
c[0].multiselect("Methods", list(methods.FAMILIES), key="run_methods", persist_state="session", on_change=ui.mark_custom,
                 format_func=lambda m: methods.spec(m).label,
                 help="; ".join(f"{f.label}: {f.summary}" for f in methods.REGISTRY.values())
                      + ". Every prompt also runs the plain baseline.")
c[1].multiselect("Draft lengths γ to measure", list(range(1, config.MAX_DRAFT_LENGTH + 1)), key="run_gammas", persist_state="session",
                 on_change=ui.mark_custom,
                 help="Tokens drafted per verify pass. Other γ values are projected from these on the Explore page.")
c[2].number_input("Max new tokens", min_value=1, max_value=config.MAX_NEW_TOKENS, step=16, key="run_max_new", persist_state="session", on_change=ui.mark_custom)

if "layer_skip_layers" in needs:
    n_layers = ui.target_layers()
    half = runplan.default_layer_skip(n_layers) if n_layers else None
    c = st.columns([2, 3])
    c[0].text_input("Layer-skip depths L", key="run_layers", persist_state="session",
                    placeholder=f"{half} (half of {n_layers} layers)" if half else "half the target's layers",
                    help="The target's first L layers, its final norm and lm_head draft; it verifies with all of them. "
                         "Several values (8, 14, 20) are measured side by side. Empty: half the target's layers.")
    c[1].caption(f"The target has **{n_layers}** layers: choose L from 1 to {n_layers - 1}. Fewer layers draft "
                 "faster but agree less with the full model." if n_layers else
                 "The target's layer count is known once it is loaded (**Load and time models**).")

if "medusa_heads" in needs:
    ui.adopt_trained_heads(job)
    saved = ui.saved_heads()
    labels = {h["path"]: ui.heads_label(h) for h in saved}
    typed = st.session_state.get("run_medusa_heads")
    st.selectbox("Medusa heads", [*labels, *([typed] if typed and typed not in labels else [])], key="run_medusa_heads", persist_state="session",
                 accept_new_options=True, format_func=lambda p: labels.get(p, p),
                 placeholder="Train heads below, or type the directory of heads trained with `train-heads`",
                 help="Heads trained on this target (saved next to the run history), or any directory written by "
                      "`python -m specdec train-heads`. Prompts the heads were trained on are reported apart "
                      "(medusa:train), so the decision rests on prompts they never saw.")
    st.checkbox("Also measure typical acceptance (lossy)", key="run_medusa_typical", persist_state="session",
                help=f"Medusa's own rule (Cai et al. 2024): accept a drafted token while the target gives it more "
                     f"than min({config.MEDUSA_TYPICAL_EPSILON:g}, {config.MEDUSA_TYPICAL_DELTA:g}·e^−entropy). It "
                     "accepts more than the exact test but changes the output: the run measures how far it drifts "
                     "from the target's, shows it apart, and never bases the decision on it.")
    with st.expander("Train heads on this workload", expanded=not saved):
        st.caption(f"The target continues half of these {len(workload.prompts)} prompts (by category) to make "
                   "its own training data; the heads learn to guess its next tokens and are scored on the other "
                   "half. Collecting costs about one baseline generation per prompt.")
        if not medusa.split(workload.prompts)[1]:
            st.warning("Every category of this sample has one prompt, so all of them would train the heads and "
                       "none would measure them: sample more prompts on the Workload page.")
        c = st.columns([1, 1, 2])
        c[0].number_input("Heads K", min_value=1, max_value=8, key="run_train_heads", persist_state="session",
                          help="Head k guesses the token k+1 ahead: a round drafts at most K tokens.")
        c[1].number_input("Training steps", min_value=1, max_value=20_000, step=50, key="run_train_steps",
                          persist_state="session", help=f"optimiser steps over {config.MEDUSA_BATCH} positions each")
        te = ui.training_estimate(workload)
        if te is not None:
            collect = (f"collecting {te.prompts} prompts takes up to {runplan.format_duration(te.collect_s)} "
                       f"({config.MEDUSA_TRAIN_TOKENS} tokens each; most stop sooner at end of text)")
            st.caption(f"At most about {runplan.format_duration(te.collect_s + te.train_s)}: {collect}, and "
                       f"{st.session_state['run_train_steps']} steps ≈ {runplan.format_duration(te.train_s)}. "
                       f"Speeds from {te.source}." if te.train_s is not None else
                       f"{collect[0].upper()}{collect[1:]}; speeds from {te.source}. The training steps are "
                       "timed as they run.")
        if c[2].button("Train heads on this workload", disabled=job.busy, icon=":material/model_training:"):
            try:
                ui.start_training(workload)
                st.rerun()
            except SpecdecError as exc:
                st.error(str(exc))
        if job.kind == "train":  # training shows its progress here, beside the button that started it
            job_panel()

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
    # Never a browser switch: running a repository's code is the decision of whoever starts the server.
    c[3].caption("Remote model code: " + ("**allowed** by the server (SPECDEC_TRUST_REMOTE_CODE)" if ui.trust_remote_code()
                 else "off. The person starting the server can allow it: `SPECDEC_TRUST_REMOTE_CODE=1 streamlit run app.py`"))

try:
    cfg = ui.run_config(len(workload.prompts) if len(workload.prompts) < total else None)
except SpecdecError as exc:
    st.error(str(exc))
    cfg = None

st.subheader("Estimated time")
speeds = ui.speeds_for(cfg) if cfg else None
est, missing = None, None
if cfg and speeds:
    prompt_tokens = runplan.approx_prompt_tokens([len(p.input_text) for p in workload.prompts])
    try:
        est = runplan.estimate_run(cfg, len(workload.prompts), prompt_tokens, speeds, ui.medusa_k(cfg))
    except SpecdecError as exc:
        missing = str(exc)
if est:
    c = st.columns([1, 3])
    setup = runplan.setup_estimate(cfg, loaded=ui.models_loaded(cfg))
    c[0].metric("Estimated run time", runplan.format_duration(est.total_s + setup.total_s))
    basis = (f"Between {runplan.format_duration(est.low_s + setup.total_s)} and "
             f"{runplan.format_duration(est.high_s + setup.total_s)} depending "
             f"on acceptance; speeds from {est.source}." if est.high_s - est.low_s >= 1.0 else
             f"Speeds and acceptance from {est.source}.")
    c[1].caption(f"{basis} {ui.setup_note(setup)} Generations that stop early make it shorter.")
    with c[1].expander("Per prompt, by configuration"):
        st.dataframe({"configuration": list(est.by_config), "seconds": [round(v, 1) for v in est.by_config.values()],
                      "draft speed": [est.draft_speed.get(k, "") for k in est.by_config]},
                     hide_index=True)
elif cfg:
    st.info((f"{missing[0].upper()}{missing[1:]}. " if missing else "") +
            "The estimate needs the speed of these models on this machine. **Load and time models** loads them "
            "(they stay loaded for the run) and times a short decode: a few seconds once loaded.")
else:
    st.caption("Fix the settings above to see an estimate.")
if cfg and st.button("Load and time models", disabled=job.busy, icon=":material/timer:"):
    try:
        ui.worker().start_calibration(cfg, ui.trust_remote_code())
        st.rerun()
    except SpecdecError as exc:
        st.error(str(exc))

st.subheader("Measure")
if st.button("Start run", type="primary", disabled=job.busy or cfg is None, icon=":material/play_arrow:"):
    try:
        ui.worker().start_run(cfg, workload, ui.trust_remote_code())
        st.rerun()
    except SpecdecError as exc:
        st.error(str(exc))


if job.kind != "train" or "medusa_heads" not in needs:
    job_panel()
