"""specdec: does speculative decoding pay off on your traffic? Navigation and the shared sidebar only.

    streamlit run app.py
"""

import streamlit as st

from pages import job_status, ui

st.set_page_config(page_title="specdec — speculative decoding, measured", page_icon=":material/speed:",
                   layout="wide")
ui.refuse_foreign_host()
ui.init_state()
goto = ui.mark_app_run()
page = st.navigation([
    st.Page(ui.PAGES["workload"], title="1 · Workload", icon=":material/upload_file:", default=True),
    st.Page(ui.PAGES["run"], title="2 · Run", icon=":material/play_circle:"),
    st.Page(ui.PAGES["explore"], title="3 · Explore", icon=":material/query_stats:"),
    st.Page(ui.PAGES["brief"], title="4 · Decision brief", icon=":material/summarize:"),
])
if goto:
    st.switch_page(ui.PAGES[goto])
job_status.sidebar()
page.run()
