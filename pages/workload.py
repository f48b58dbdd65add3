"""Step 1 — Workload: a sample of the prompts you serve, checked, summarised and previewed."""

import streamlit as st

from pages import ui
from specdec.present import views
from specdec.measure import workloads
from specdec.errors import SpecdecError

ui.enter("workload")
st.title("1 · Workload")
st.write("Speculative decoding pays off on some traffic and not on other: measure it on **your** prompts. "
         "Upload a sample of real requests, or start with one of the sample workloads.")
st.page_link(ui.PAGES["explore"], label="New here? Look at a recorded example run first", icon=":material/history:")

source = st.radio("Prompts from", ["Upload a file", "A sample workload"], key="wl_source", persist_state="session", horizontal=True)
if source == "Upload a file":
    upload = st.file_uploader(
        "Prompt file (CSV, TSV, JSONL, JSON or TXT, up to 50 MB)", type=["csv", "tsv", "jsonl", "json", "txt"],
        key="wl_upload",
        help="CSV/TSV: a header with a `prompt` column, optional `category`, `id`, `system`. JSONL/JSON: "
             "{\"prompt\": …}, chat {\"messages\": […]}, ShareGPT or MT-bench records. TXT: prompts separated by "
             "`---` lines (or one per line), `# category: NAME` lines set the category.")
    if upload is not None:
        ui.set_workload_file(upload.name, upload.getvalue())
    elif ui.workload_file() and ui.workload_file()["path"] is None:
        st.caption(f"Showing your earlier upload, {ui.workload_file()['name']}.")
    else:
        st.info("Upload a prompt file to continue.")
        st.stop()
else:
    files = views.sample_workload_files()
    names = [p.name for p in files]
    if st.session_state.get("wl_sample_file") not in names and "mixed.jsonl" in names:
        st.session_state["wl_sample_file"] = "mixed.jsonl"
    chosen = st.selectbox("Sample workload", names, key="wl_sample_file", persist_state="session",
                          help="Prompts written for this project in nine categories; mixed.jsonl blends them "
                               "like product traffic.")
    if chosen:
        path = files[names.index(chosen)]
        ui.set_workload_file(path.name, path.read_bytes(), str(path))

try:
    full = ui.parse_workload()
except SpecdecError as exc:
    st.error(ui.esc(str(exc)))
    st.stop()
if full is None:
    st.info("Upload a prompt file or pick a sample workload to continue.")
    st.stop()

total = len(full.prompts)
if total > 1:
    st.session_state["wl_sample_size"] = ui.sample_size(total)
    st.slider("Prompts to measure", 1, total, key="wl_sample_size", persist_state="session",
              help="A stratified random sample: every category keeps its share of the file. More prompts give "
                   "tighter confidence intervals and take longer; the presets on the Run page set this too.")
workload = ui.parse_workload(ui.sample_size(total)) if ui.sample_size(total) < total else full
summary = workload.summary()

st.subheader(ui.esc(summary['name']))
c = st.columns(4)
c[0].metric("Format", workloads.FORMAT_NAMES.get(summary["format"], summary["format"]))
c[1].metric("Prompts to measure", f"{summary['prompts']} of {total}")
c[2].metric("Categories", len(summary["categories"]))
c[3].metric("Chat prompts", summary["chat_prompts"], help=f"{summary['with_system']} with a system message")

left, right = st.columns([1, 1])
with left:
    st.markdown("**Prompts per category**")
    st.dataframe(views.category_table(summary), hide_index=True, width="stretch")
with right:
    st.markdown(f"**Warnings ({len(summary['warnings'])})**")
    if summary["warnings"]:
        st.markdown("\n".join(f"- {ui.esc(w)}" for w in summary["warnings"][:200]))
    else:
        st.caption("none")
    st.markdown(f"**Skipped ({len(summary['skipped'])})**")
    if summary["skipped"]:
        with st.container(height=200 if len(summary["skipped"]) > 6 else "content"):
            shown = summary["skipped"][:200]  # a file may skip up to config.MAX_WORKLOAD_RECORDS records
            more = len(summary["skipped"]) - len(shown)
            st.markdown("\n".join(f"- {ui.esc(s)}" for s in shown) + (f"\n- … and {more:,} more" if more else ""))
    else:
        st.caption("nothing skipped")

st.markdown("**Preview**")
st.dataframe(views.preview_table(workload), hide_index=True, width="stretch",
             column_config={"prompt": st.column_config.TextColumn(width="large")})
st.page_link(ui.PAGES["run"], label="Next: choose models and run", icon=":material/arrow_forward:")
