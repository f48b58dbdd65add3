"""What the measuring process is doing, on every page: the sidebar's active run and live progress, the Run
page's progress bar and the last job's outcome in one line. Drawing only: the status comes from the Worker.
"""

from __future__ import annotations

import streamlit as st

from pages import ui
from pages.ui import esc, heads_label, worker
from specdec.measure import runplan
from specdec.measure.jobs import heads_summary

TRAIN_STAGES = {"collecting": ("Collecting the target's own continuations", "prompts"),
                "training": ("Training the heads", "steps"), "scoring": ("Scoring on held-out prompts", "")}


def _progress_text(status) -> str:
    t = status.training
    if status.kind == "train" and t is not None:
        parts = [f"{t.stage} {t.done}/{t.total}", t.detail]
        if t.eta_s is not None:
            parts.append(f"ETA {runplan.format_duration(t.eta_s)}")
        return " · ".join(p for p in parts if p)
    e = status.engine
    if status.kind == "engine" and e is not None:
        return f"{e.side} C={e.concurrency} (level {e.level}/{e.levels}) · {e.done}/{e.total} · {e.tokens_per_s:.1f} tok/s"
    p = status.progress
    if status.state == "running" and p is not None:
        parts = [f"prompt {min(p.done + 1, p.total)} of {p.total}" if p.done < p.total else f"{p.total} of {p.total} done"]
        if p.tokens_per_s:
            parts.append(f"{p.tokens_per_s:.1f} tok/s")
        if p.eta_s is not None:
            parts.append(f"ETA {runplan.format_duration(p.eta_s)}")
        return " · ".join(parts)
    return status.detail or status.state


def job_progress(status) -> None:
    """Progress bar and the live numbers of a busy job."""
    p, t = status.progress, status.training
    if status.kind == "train" and t is not None:
        title, unit = TRAIN_STAGES.get(t.stage, (t.stage, ""))
        st.progress(min(t.done / max(t.total, 1), 1.0), text=f"{title}: {t.done} of {t.total} {unit}".strip())
        c = st.columns(3)
        c[0].metric("Stage", t.stage)
        c[1].metric("Loss" if t.detail.startswith("loss") else "Done", t.detail.removeprefix("loss ") if
                    t.detail.startswith("loss") else f"{t.done} / {t.total}")
        c[2].metric("Stage time left", runplan.format_duration(t.eta_s) if t.eta_s is not None else "…",
                    help=f"elapsed {runplan.format_duration(t.elapsed_s)}; from this stage's pace so far")
    elif status.kind == "engine" and status.engine is not None:
        e = status.engine
        st.progress(min(e.done / max(e.total, 1), 1.0),
                    text=f"{e.side} server, concurrency {e.concurrency}: {e.done} of {e.total} requests")
        c = st.columns(3)
        c[0].metric("Level", f"{e.level} / {e.levels}", help="every concurrency level on every server")
        c[1].metric("Requests done", f"{e.done} / {e.total}")
        c[2].metric("Output tokens/s", f"{e.tokens_per_s:.1f}", help="this level so far: tokens finished / time")
    elif status.state == "running" and p is not None and p.total:
        st.progress(p.done / p.total, text=f"{p.stage}: prompt {min(p.done + 1, p.total)} of {p.total} "
                                           f"({p.prompt_id})")
        c = st.columns(4)
        c[0].metric("Prompts done", f"{p.done} / {p.total}")
        c[1].metric("Baseline tokens/s", f"{p.tokens_per_s:.1f}" if p.tokens_per_s else "…")
        c[2].metric("Draft acceptance so far", f"{p.acceptance:.0%}" if p.acceptance is not None else "…",
                    help="accepted ÷ drafted over the draft-model rounds so far (ρ)")
        c[3].metric("Time left", runplan.format_duration(p.eta_s) if p.eta_s is not None else "…",
                    help=f"elapsed {runplan.format_duration(p.elapsed_s)}; from the mean time per prompt so far")
    else:  # loading: a determinate bar while converting or joining, with the stage's time left
        eta = f" · about {runplan.format_duration(status.stage_eta_s)} left" if status.stage_eta_s is not None else ""
        st.progress(min(status.fraction or 0.0, 1.0), text=(status.detail or "starting") + eta)
    if status.cancel_requested and status.log:
        st.caption("Cancelling: the measuring process is asked to stop as with Ctrl-C; prompts finished so far "
                   "are kept, a half-done conversion is discarded.")
    elif status.cancel_requested and status.kind == "train":
        st.caption("Cancelling: training stops after the current prompt or step; no heads are saved.")
    elif status.cancel_requested:
        st.caption("Cancelling: the run stops after the configuration being measured; prompts done so far are kept.")


def job_outcome(status) -> None:
    """The last finished job, in one line."""
    if status.state == "failed":
        what = {"run": "Run", "train": "Training", "engine": "Engine run"}.get(status.kind, "Calibration")
        st.error(f"{what} failed: {esc(status.error)}" + (f" — the levels finished before it are stored (run "
                                                           f"{status.run_id})." if status.kind == "engine"
                                                           and status.run_id else ""))
    elif status.kind == "engine" and status.state == "complete":
        st.success(f"Engine run finished: {esc(status.label)} (run {status.run_id}).")
    elif status.kind == "engine" and status.state == "interrupted" and status.run_id:
        st.warning(f"Engine run cancelled: the levels finished before it stopped are stored (run {status.run_id}).")
    elif status.kind == "train" and status.state == "complete":
        h = heads_summary(status.heads_dir) if status.heads_dir else None
        st.success(f"Heads trained and selected: {heads_label(h) if h else status.heads_dir}.")
    elif status.kind == "train" and status.state == "interrupted":
        st.warning("Training cancelled: no heads were saved.")
    elif status.kind == "run" and status.state == "complete":
        st.success(f"Run finished: {esc(status.label)} (run {status.run_id}).")
        if status.unreliable:
            st.warning(f"The machine was not quiet while this run timed: {status.unreliable}. Its speedups are "
                       "unreliable and the decision will not rest on them; re-run when the machine is idle.")
    elif status.kind == "run" and status.state == "interrupted" and status.run_id:
        st.warning(f"Run cancelled: the prompts measured before it stopped are stored (run {status.run_id}).")
    elif status.state == "interrupted" and status.kind != "train":
        st.warning("Cancelled before anything was measured (a half-done model conversion is discarded).")
    elif status.kind == "calibrate" and status.state == "complete":
        st.success("Models loaded and timed: the estimate above uses their measured speed.")


def open_run(run_id: str) -> None:
    """on_click: make a stored run the active one (the Explore and Brief pages show it)."""
    st.session_state["src_kind"] = ui.STORED
    st.session_state["src_run"] = run_id


@st.fragment(run_every=2.0)
def _sidebar_live() -> None:
    status = worker().status()
    if not status.busy:
        st.rerun()
    st.caption(f"**{'Training' if status.kind == 'train' else 'Measuring'}** — {esc(status.label)}")
    p = status.progress
    t = status.training
    e = status.engine
    done = (t.done / max(t.total, 1) if t is not None else p.done / p.total if (p is not None and p.total)
            else e.done / max(e.total, 1) if e is not None
            else status.fraction or 0.0)  # loading: the conversion's fraction, when one is running
    st.progress(min(done, 1.0), text=_progress_text(status))


def sidebar() -> None:
    """Active run and measurement status, on every page."""
    with st.sidebar:
        source = ui.active_source()
        st.caption("**Showing**")
        st.caption(esc(source.label) if source else "no run selected")
        status = worker().status()
        if status.busy:
            _sidebar_live()
        elif status.kind in ("run", "engine") and status.state in ("complete", "interrupted", "failed"):
            word = {"complete": "finished", "interrupted": "cancelled", "failed": "failed"}[status.state]
            st.caption(f"**Last run {word}** — {esc(status.label)}")
        else:
            st.caption("No measurement running.")
