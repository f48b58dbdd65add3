"""The Run page's engine backend: the local llama.cpp engine (bundled pair) or two running servers by URL.
Widgets only: the fields are checked by specdec.engines.request, the run goes to the measuring process."""

from __future__ import annotations

import streamlit as st

from pages import ui
from specdec import config
from specdec.engines import llamacpp, request
from specdec.errors import SpecdecError

MODES = {request.LOCAL: "Local llama.cpp (bundled pair)", request.URLS: "Two running servers (URLs)"}


def draw(workload, job) -> None:
    st.subheader("Serving engine")
    st.caption("The workload is replayed against a real server twice — without and with speculative decoding — at "
               "each concurrency level (that many requests in flight), streaming, greedy, a fixed output length; "
               "acceptance comes from the engine's own counters.")
    mode = st.radio("Engine", list(MODES), key="eng_mode", persist_state="session", horizontal=True,
                    format_func=MODES.get)
    c = st.columns(3)
    if mode == request.LOCAL:
        if not llamacpp.available():
            st.warning(f"No llama-server at {llamacpp.binary_path()}: {llamacpp.INSTALL_HINT}.")
        st.caption(f"llama-server is started here on 127.0.0.1, once plain and once per γ, on the bundled "
                   f"{config.BUNDLED_TARGET} and {config.BUNDLED_DRAFT} GGUF files, and stopped after.")
        c[0].text_input("Draft lengths γ", key="eng_gammas", persist_state="session",
                        help="one speculative server per value, e.g. 2,4 (--spec-draft-n-max)")
    else:
        u = st.columns(2)
        u[0].text_input("Baseline URL (without SD)", key="eng_base_url", persist_state="session",
                        placeholder="http://127.0.0.1:8000", help="e.g. `vllm serve T --port 8000`")
        u[1].text_input("Speculative URL (same model, with SD)", key="eng_spec_url", persist_state="session",
                        placeholder="http://127.0.0.1:8001", help="e.g. `vllm serve T --port 8001 --speculative-config …`")
        u[0].text_input("Metrics URL (optional)", key="eng_metrics_url", persist_state="session",
                        help="where the speculative server's /metrics answers, if not at its URL")
        u[1].text_input("Model name (optional)", key="eng_model", persist_state="session",
                        help="default: the model the endpoint's /v1/models lists")
        st.caption("Any host is allowed: the app only sends OpenAI-compatible requests there and stores the numbers "
                   "and text that come back; nothing received is run.")
    c[1].text_input("Concurrency levels", key="eng_conc", persist_state="session",
                    help="closed loop: that many requests in flight at once, e.g. 1,2,4,8")
    c[2].number_input("Max tokens per request", min_value=1, max_value=config.MAX_NEW_TOKENS, step=16,
                      key="eng_max_new", persist_state="session")
    s = st.session_state
    try:
        req = request.from_form(mode, draft_lengths=s["eng_gammas"], concurrency=s["eng_conc"],
                                max_new_tokens=s["eng_max_new"], baseline_url=s["eng_base_url"],
                                spec_url=s["eng_spec_url"], metrics_url=s["eng_metrics_url"], model=s["eng_model"])
    except SpecdecError as exc:
        st.error(str(exc))
        req = None
    if st.button("Start engine run", type="primary", disabled=job.busy or req is None, icon=":material/dns:"):
        try:
            ui.worker().start_engine_run(req, workload)
            st.rerun()
        except SpecdecError as exc:
            st.error(str(exc))
