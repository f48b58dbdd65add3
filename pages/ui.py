"""Shared pieces of the app's pages: session state, caches, the active run, the brief's download. The sidebar
and job status are pages/job_status.py, the HTML views Streamlit has no widget for pages/html_views.py.
No computation: that lives in specdec/.

Caching rules: models and the background worker are resources (one per server process); parsed
workloads, stored results, their analysis and decisions are cache_data keyed by what identifies
them (file bytes, run id + prompts stored + status). Measurements are never cached.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from specdec.analysis import summary as A
from specdec import config, localonly, methods, results as R
from specdec import store as run_store
from specdec.analysis import decision
from specdec.analysis import hardware
from specdec.measure import models
from specdec.measure import runplan, speeds
from specdec.present import views
from specdec.measure import workloads
from specdec.errors import SpecdecError
from specdec.measure.jobs import HEADS_DIRNAME, TrainOptions, heads_summary, model_key
from specdec.measure.worker import Worker

APP_DIR = Path(__file__).resolve().parents[1]
PAGES = {"workload": "pages/workload.py", "run": "pages/run.py", "explore": "pages/explore.py",
         "brief": "pages/brief.py"}
QUICK = runplan.PRESETS["quick"]
EXAMPLE, STORED, UPLOADED = "Recorded example", "Stored run", "Upload results.json"
SAMPLING_TEMPERATURE = 1.0  # what the temperature control starts at when sampling is chosen

# First values of the controls that other pages read or presets set; their widgets are drawn with
# persist_state="session" so a page switch keeps what the user chose.
DEFAULTS = {
    "wl_source": "A sample workload", "wl_sample_file": "mixed.jsonl", "wl_sample_size": QUICK.max_prompts,
    "run_preset": "quick", "run_target": config.BUNDLED_TARGET, "run_draft": config.BUNDLED_DRAFT,
    "run_methods": list(QUICK.methods), "run_gammas": list(QUICK.draft_lengths),
    "run_max_new": QUICK.max_new_tokens, "run_real_prompts": QUICK.real_prompts, "run_decoding": "greedy", "run_temperature": SAMPLING_TEMPERATURE,
    "run_top_p": config.SamplingConfig.top_p, "run_top_k": config.SamplingConfig.top_k,
    "run_seed": config.DEFAULT_SEED, "run_dtype": config.DEFAULT_DTYPE, "run_device": config.DEFAULT_DEVICE,
    "run_layers": "", "run_medusa_heads": None, "run_train_heads": config.MEDUSA_HEADS,
    "run_train_steps": config.MEDUSA_STEPS, "run_medusa_typical": False, "src_kind": None, "src_run": None,
    "ex_hw": config.DEFAULT_HARDWARE, "ex_batch": 1,
    "th_hw": config.DEFAULT_HARDWARE, "th_speedup": decision.Thresholds.min_speedup_lo,
    "th_prompts": decision.Thresholds.min_prompts, "th_segment": decision.Thresholds.min_prompts_per_segment,
    "th_projected": decision.Thresholds.min_projected_speedup, "th_identical": decision.Thresholds.min_identical_rate,
    "th_halfwidth": decision.Thresholds.ci_halfwidth,
    "run_backend": "in-process", "eng_mode": "local", "eng_gammas": ",".join(map(str, config.ENGINE_DRAFT_LENGTHS)),
    "eng_conc": ",".join(map(str, config.ENGINE_CONCURRENCY)), "eng_max_new": config.DEFAULT_MAX_NEW_TOKENS,
    "eng_base_url": "", "eng_spec_url": "", "eng_metrics_url": "", "eng_model": "",
}


def trust_remote_code() -> bool:
    """Set by whoever starts the server (SPECDEC_TRUST_REMOTE_CODE=1), never from the browser."""
    return models.remote_code_allowed()


def esc(text) -> str:
    """User text (model, workload, category names) as literal Markdown: no links, images or emphasis."""
    return views.md_escape(text)


def keep_choice(key: str, options, default) -> None:
    """Before drawing a choice widget: reset its remembered value when it is not among the options
    (another run was opened), so the widget never holds a value it cannot show."""
    options = list(options)
    if st.session_state.get(key) not in options:
        st.session_state[key] = default if default in options else options[0]


def enter(page: str) -> None:
    """First line of every page. A link straight to a page (…/brief) that is the first request a
    fresh server sees makes Streamlit run the page file alone, in its legacy pages/-folder mode: no
    app.py, so no navigation, no shared sidebar and none of the defaults (the thresholds came up at
    their minimum). Hand over to app.py, which opens the page asked for."""
    if st.session_state.get(_VIA_APP):
        return
    st.session_state[_GOTO] = page
    st.switch_page("app.py")


def refuse_foreign_host() -> None:
    """Stop here when the page was addressed by a non-loopback name to a loopback-bound server (a DNS
    rebinding page would otherwise drive the app from the user's browser); see specdec/localonly.py."""
    host = st.context.headers.get("Host")
    if localonly.host_allowed(host, st.get_option("server.address")):
        return

    def refused() -> None:
        st.error(f"This app serves 127.0.0.1 and localhost only, not {esc(host)}: open http://127.0.0.1:"
                 f"{st.get_option('server.port')} instead.")
    # A one-page, hidden navigation: without it Streamlit would list pages/ in the sidebar.
    st.navigation([st.Page(refused, title="specdec")], position="hidden").run()
    st.stop()


def mark_app_run() -> str | None:
    """Called by app.py each run: pages may run now; returns a page asked for by enter(), once."""
    st.session_state[_VIA_APP] = True
    return st.session_state.pop(_GOTO, None)


_VIA_APP, _GOTO = "_via_app", "_goto_page"


def init_state() -> None:
    """First values of the controls (their widgets keep them across pages: persist_state="session")."""
    for key, value in DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = value


# ---- resources ----

@st.cache_resource(show_spinner=False)
def _store(path: str) -> run_store.Store:
    return run_store.Store(path)


def store() -> run_store.Store:
    """The run history ($SPECDEC_STORE or the default path); one connection per server process."""
    return _store(str(run_store.default_path()))


@st.cache_resource(show_spinner=False)
def _worker(path: str) -> Worker:
    # partial, not a lambda: the factory is pickled to the measuring process.
    return Worker(store_factory=functools.partial(run_store.Store, path), heads_root=Path(path).parent / HEADS_DIRNAME)


def worker() -> Worker:
    """The background worker: one job at a time for the whole server, in a measuring process of its own
    that keeps the loaded models."""
    return _worker(str(run_store.default_path()))


@st.cache_resource(show_spinner=False, max_entries=4)
def _tokenizer(local_path: str):
    return views.load_tokenizer({"models": {"target": {"local_path": local_path}}})


def tokenizer_for(manifest: dict):
    path = ((manifest.get("models") or {}).get("target") or {}).get("local_path")
    return _tokenizer(path) if path else None


# ---- workload ----

def set_workload_file(name: str, data: bytes, path: str | None = None) -> None:
    st.session_state["wl_file"] = {"name": name, "data": data, "path": path}


def workload_file() -> dict | None:
    return st.session_state.get("wl_file")


@st.cache_data(show_spinner="Reading the prompt file…", max_entries=8)
def _parse(name: str, data: bytes, path: str | None, max_prompts: int | None, seed: int) -> workloads.Workload:
    if path:
        return workloads.load_workload(path, max_prompts=max_prompts, seed=seed)
    return workloads.load_workload(data, name=name, max_prompts=max_prompts, seed=seed)


def parse_workload(max_prompts: int | None = None) -> workloads.Workload | None:
    """The chosen file as a Workload (sampled to max_prompts); None when no file is chosen.
    Raises SpecdecError (one line) for a file that cannot be used."""
    f = workload_file()
    if f is None:
        return None
    return _parse(f["name"], f["data"], f["path"], max_prompts, int(st.session_state["run_seed"]))


def sample_size(total: int) -> int:
    """The number of prompts to measure, clipped to the workload (None in a preset means all)."""
    n = st.session_state.get("wl_sample_size")
    return total if n is None else max(1, min(int(n), total))


def current_workload() -> tuple[workloads.Workload | None, int]:
    """(the sampled workload to run, prompts in the whole file); (None, 0) without a usable file."""
    try:
        full = parse_workload()
    except SpecdecError:
        return None, 0
    if full is None:
        return None, 0
    total = len(full.prompts)
    n = sample_size(total)
    return (full if n >= total else parse_workload(n)), total


# ---- run settings ----

def apply_preset() -> None:
    """on_change of the preset box: write the preset's values into the run controls."""
    name = st.session_state["run_preset"]
    preset = runplan.PRESETS.get(name)
    if preset is None:
        return
    st.session_state.update(run_methods=list(preset.methods), run_gammas=list(preset.draft_lengths),
                            run_max_new=preset.max_new_tokens, wl_sample_size=preset.max_prompts,
                            run_real_prompts=preset.real_prompts)


def mark_custom() -> None:
    st.session_state["run_preset"] = "custom"


def draft_specs() -> list[str]:
    """The draft models typed in the Run page's box: one per line (commas also split)."""
    text = st.session_state["run_draft"] or ""
    return [p.strip() for line in text.splitlines() for p in line.split(",") if p.strip()]


def target_layers() -> int | None:
    """The chosen target's decoder layers, read from its config without loading it (None: unknown)."""
    return models.peek_num_layers(st.session_state["run_target"])


def run_config(max_prompts: int | None) -> config.RunConfig:
    """The Run page's controls as a checked RunConfig; every problem is one SpecdecError line."""
    s = st.session_state
    chosen = s["run_methods"]
    needs = methods.options(chosen)
    layers = ()
    if "layer_skip_layers" in needs:
        n = target_layers()
        layers = runplan.parse_layers(s["run_layers"], n) or ((runplan.default_layer_skip(n),) if n else ())
    heads = s.get("run_medusa_heads") if "medusa_heads" in needs else None
    if "medusa_heads" in needs:
        if not heads:
            raise SpecdecError("Medusa needs trained heads: pick saved heads, type a heads directory, or train "
                               "heads on this workload")
        if heads_summary(heads) is None:
            raise SpecdecError(f"{heads}: not a Medusa heads directory (it needs medusa.json and "
                               "heads.safetensors); pick saved heads or train new ones")
    sampling = s["run_decoding"] == "sampling"
    return runplan.run_config(
        target=s["run_target"], draft=draft_specs(), methods=chosen, draft_lengths=s["run_gammas"],
        max_new_tokens=s["run_max_new"], max_prompts=max_prompts,
        temperature=float(s["run_temperature"]) if sampling else 0.0,
        top_p=float(s["run_top_p"]) if sampling else 1.0, top_k=int(s["run_top_k"]) if sampling else 0,
        seed=int(s["run_seed"]), dtype=s["run_dtype"], device=s["run_device"], layer_skip_layers=layers,
        medusa_heads=heads, medusa_typical="medusa_typical" in needs and bool(s.get("run_medusa_typical")),
        real_prompts=int(s["run_real_prompts"]))


def models_loaded(cfg: config.RunConfig) -> bool:
    """The measuring process already holds cfg's models (nothing to convert or load before the run)."""
    return worker().loaded() == model_key(cfg, trust_remote_code())


def setup_note(setup: runplan.Setup) -> str:
    """What the estimate includes before the first prompt, in one sentence."""
    if not setup.total_s and not setup.unknown:
        return "The models are loaded already."
    parts = []
    if setup.converting:
        names = " and ".join(views.model_name(s) for s in setup.converting)
        parts.append(f"converting {names} on first use (about {runplan.format_duration(setup.convert_s)}; "
                     "`python -m specdec prepare` does it ahead)")
    if setup.load_s:
        parts.append(f"loading the models (about {runplan.format_duration(setup.load_s)})")
    text = f"Includes {' and '.join(parts)}." if parts else ""
    if setup.unknown:
        text += f" Downloading {', '.join(setup.unknown)} is not included."
    return text.strip()


def saved_heads() -> list[dict]:
    """Medusa heads trained on the chosen target (jobs.heads_summary each), newest first."""
    return worker().saved_heads(st.session_state["run_target"].strip())


def heads_label(h: dict) -> str:
    """'target-mixed-K3-300s-… — 3 heads, held-out top-1 41% · 22% · 12%'."""
    top1 = " · ".join(f"{v:.0%}" for v in h["top1"]) or "not scored"
    return f"{h['name']} — {h['heads']} heads, held-out top-1 {top1}"


def adopt_trained_heads(status) -> None:
    """Before the heads box is drawn: once per finished training, select the heads it saved."""
    if status.kind == "train" and status.state == "complete" and status.heads_dir \
            and st.session_state.get("run_heads_adopted") != status.started:
        st.session_state["run_medusa_heads"] = status.heads_dir
        st.session_state["run_heads_adopted"] = status.started


def start_training(workload) -> None:
    """on the Train button: a train-heads job on the chosen target with the page's dtype/device."""
    s = st.session_state
    if not s["run_target"].strip():
        raise SpecdecError("choose a target model first")
    worker().start_training(s["run_target"].strip(), workload, TrainOptions(
        num_heads=int(s["run_train_heads"]), steps=int(s["run_train_steps"]), seed=int(s["run_seed"]),
        dtype=s["run_dtype"], device=s["run_device"], trust_remote_code=trust_remote_code()))


def medusa_k(cfg: config.RunConfig) -> int | None:
    h = heads_summary(cfg.medusa_heads) if cfg.medusa_heads else None
    return int(h["heads"]) if h and h.get("heads") else None


def _recorded_speeds(target: str):
    """Speeds of the recorded example and of the stored runs of this target (speeds.recorded), cached."""
    example = _example_source()
    example_target = None
    if example is not None:
        example_target = _load_results(example.kind, example.ident, example.version, "")["manifest"]["models"]["target"]["spec"]
    return speeds.recorded(
        target, example_target, store().list_runs(),
        load_example=lambda: _speeds_from_example(example.ident, example.version),
        load_run=lambda row: _speeds_from_run(str(store().path), row["run_id"], f"{row['n_prompts']}:{row['status']}"))


def training_estimate(workload) -> runplan.TrainingEstimate | None:
    """What training heads on this workload would take with the chosen target (speeds.for_training);
    None when nothing is recorded."""
    target = st.session_state["run_target"].strip()
    found = speeds.for_training(_recorded_speeds(target)) if target else None
    if found is None:
        return None
    return speeds.training_estimate(workload.prompts, int(st.session_state["run_train_steps"]),
                                    int(st.session_state["run_train_heads"]), found)


@st.cache_data(show_spinner=False, max_entries=32)
def _speeds_from_run(store_path: str, run_id: str, version: str) -> speeds.Speeds | None:
    try:
        return speeds.speeds_from_results(run_store.Store(store_path).load_run(run_id))
    except SpecdecError:
        return None


@st.cache_data(show_spinner=False, max_entries=2)
def _speeds_from_example(path: str, version: str) -> speeds.Speeds | None:
    try:
        return speeds.speeds_from_results(R.load(path))
    except SpecdecError:
        return None


def speeds_for(cfg: config.RunConfig) -> speeds.Speeds | None:
    """Speeds that price every drafter of cfg (speeds.for_run): this process's calibration of the target
    first, then the recorded example and the stored runs of the same target."""
    def found():
        yield worker().speeds(cfg, trust_remote_code())
        yield from _recorded_speeds(cfg.target)

    return speeds.for_run(cfg, found())


# ---- the active run (Explore and Brief show it) ----

@dataclass(frozen=True)
class Source:
    kind: str  # EXAMPLE | STORED | UPLOADED
    ident: str  # example path, run id, or sha256 of the upload
    version: str  # changes when the data does: mtime, "prompts:status", sha
    label: str


def _example_source() -> Source | None:
    path = views.example_results_path()
    if path is None:
        return None
    return Source(EXAMPLE, str(path), str(path.stat().st_mtime_ns), "Recorded example")


def _stored_source(run_id: str | None) -> Source | None:
    rows = {r["run_id"]: r for r in store().list_runs()}
    row = rows.get(run_id) if run_id else None
    if row is None:
        return None
    return Source(STORED, run_id, f"{row['n_prompts']}:{row['status']}", views.stored_run_label(row))


def active_source() -> Source | None:
    """What the source controls point at, without drawing them (for the sidebar)."""
    kind = st.session_state.get("src_kind")
    if kind == STORED:
        return _stored_source(st.session_state.get("src_run"))
    if kind == UPLOADED:
        return st.session_state.get("src_uploaded")
    return _example_source()


def shared_choice(widget, label: str, options: list, state_key: str, **kwargs):
    """A choice widget that two pages draw and that shows the same value on both (Explore and Brief
    pick the same run). Its value lives in st.session_state[state_key]; the widget under its own key
    is re-seeded from it each run and copies changes back — Streamlit's pattern for widgets shared
    across pages (a keyed widget with persist_state came back empty after a page switch)."""
    if st.session_state.get(state_key) not in options:
        st.session_state[state_key] = options[0]
    widget_key = f"_{state_key}_widget"
    st.session_state[widget_key] = st.session_state[state_key]

    def copy_back():
        st.session_state[state_key] = st.session_state[widget_key]

    return widget(label, options, key=widget_key, on_change=copy_back, **kwargs)


def source_picker() -> Source | None:
    """Radio for where the run comes from, then the run itself: the recorded example, a stored run
    (newest first), or an uploaded results.json (validated; errors shown as one line)."""
    options = [k for k, ok in ((EXAMPLE, _example_source() is not None), (STORED, True), (UPLOADED, True)) if ok]
    kind = shared_choice(st.radio, "Show", options, "src_kind", horizontal=True)
    if kind == EXAMPLE:
        return _example_source()
    if kind == STORED:
        rows = store().list_runs()
        if not rows:
            st.info("No stored runs yet: measure one on the Run page, or import one with "
                    "`python -m specdec runs import results.json`.")
            return None
        ids = [r["run_id"] for r in rows]
        labels = {r["run_id"]: views.stored_run_label(r) for r in rows}
        run_id = shared_choice(st.selectbox, "Stored run", ids, "src_run", format_func=labels.get)
        return _stored_source(run_id)
    upload = st.file_uploader("results.json", type=["json"], key="src_upload",
                              help="a results.json written by `python -m specdec run` or downloaded from the Brief page")
    if upload is not None:
        try:
            data = upload.getvalue()
            sha = _sha(data)
            uploads = st.session_state.setdefault("uploads", {})
            if sha not in uploads:
                uploads = {sha: views.results_from_bytes(data, upload.name)}  # keep one upload in memory
                st.session_state["uploads"] = uploads
            st.session_state["src_uploaded"] = Source(UPLOADED, sha, sha, f"Uploaded {upload.name}")
        except SpecdecError as exc:
            st.error(esc(str(exc)))  # the message names the upload, which is user text
            return None
    return st.session_state.get("src_uploaded")


def _sha(data: bytes) -> str:
    import hashlib
    return hashlib.sha256(data).hexdigest()


@st.cache_data(show_spinner=False, max_entries=16)
def _load_results(kind: str, ident: str, version: str, store_path: str) -> dict:
    if kind == EXAMPLE:
        return R.load(ident)
    return run_store.Store(store_path).load_run(ident)


def results_of(source: Source) -> dict:
    if source.kind == UPLOADED:
        return st.session_state["uploads"][source.ident]
    return _load_results(source.kind, source.ident, source.version, str(store().path))


@st.cache_data(show_spinner="Analysing the run…", max_entries=16)
def _analysis(kind: str, ident: str, version: str, _results: dict) -> A.Analysis:
    return A.analyze(_results)


def analysis_of(source: Source, results: dict) -> A.Analysis:
    return _analysis(source.kind, source.ident, source.version, results)


@st.cache_data(show_spinner=False, max_entries=32)
def _decision(kind: str, ident: str, version: str, thresholds: decision.Thresholds, hw: str,
              _analysis: A.Analysis, deployment=None, _engine_levels=None) -> decision.Decision:
    return decision.decide(_analysis, thresholds, hardware=hw, deployment=deployment, engine_levels=_engine_levels)


def decision_of(source: Source, a: A.Analysis, thresholds: decision.Thresholds, hw: str,
                deployment=None, engine_levels=None) -> decision.Decision:
    """deployment: the target the verdict is about (specdec.analysis.deploy.Deployment), None = this run's
    measured verdict; engine_levels: results["engine"]["levels"] made with its engine, if any."""
    return _decision(source.kind, source.ident, source.version, thresholds, hw, a, deployment, engine_levels)


@st.cache_data(show_spinner=False, max_entries=32)
def _whatif(kind: str, ident: str, version: str, hw: str, method: str, context: float, category: str,
            _analysis: A.Analysis):
    return hardware.whatif(_analysis, hardware=[hw], methods=[method], context_lens=[context], category=category)


def whatif_of(source: Source, a: A.Analysis, hw: str, method: str, context: float, category: str = "all"):
    return _whatif(source.kind, source.ident, source.version, hw, method, float(context), category, a)


def load_active(source: Source | None) -> tuple[dict, A.Analysis] | None:
    """(results, analysis) of the source, or None after saying why on screen (one line, no traceback)."""
    if source is None:
        return None
    try:
        results = results_of(source)
    except SpecdecError as exc:
        st.error(str(exc))
        return None
    try:
        return results, analysis_of(source, results)
    except SpecdecError as exc:
        st.info(f"Nothing to analyse yet: {exc}.")
        return None


def active_run(source: Source | None) -> tuple[dict, A.Analysis]:
    """The run a page shows (Explore, Brief): loaded, analysed and introduced by its banner; (results, analysis).
    Stops the page, having said why, when there is none."""
    loaded = load_active(source)
    if loaded is None:
        st.stop()
    results, a = loaded
    run_banner(source, results["manifest"])
    return results, a


def run_banner(source: Source, manifest: dict) -> None:
    """Which run this is, where and when it was measured; recorded examples say so."""
    f = views.run_facts(manifest)
    where = esc(f"{f['hardware']} · {f['date']} · {f['models']} · workload {f['workload']}")
    if source.kind == EXAMPLE:
        st.info(f"**Recorded example** (run {f['run_id']}), measured on {where}. It shows what a finished "
                f"run looks like; measure your own traffic on the Workload and Run pages.", icon=":material/history:")
    else:
        status = "" if f["status"] == "complete" else f" — **{f['status']}**"
        head = f"{esc(source.label)} · " if source.kind == UPLOADED else ""  # a stored run's label is in its picker
        st.caption(f"{head}Run {f['run_id']}{status}, measured on {where}")
    st.caption(f"Settings: {esc(f['settings'])}")
    if manifest.get("status") == "failed":
        st.error(f"This run failed: {esc(manifest.get('error') or 'no reason recorded')}. The prompts measured "
                 "before it are kept; `python -m specdec run … --resume` continues it.")
    if source.kind == STORED and f["status"] == "running":
        st.button("Still measuring: refresh to include the prompts finished since", icon=":material/refresh:")


def results_json(results: dict) -> bytes:
    return json.dumps(results, ensure_ascii=False, indent=1).encode("utf-8")


# ---- the brief ----

VERDICT_BOX = {"GO": st.success, "GO-SEGMENTS": st.success, "NO-GO": st.error, "INSUFFICIENT-EVIDENCE": st.warning}
VERDICT_ICON = {"GO": ":material/check_circle:", "GO-SEGMENTS": ":material/rule:", "NO-GO": ":material/block:",
                "INSUFFICIENT-EVIDENCE": ":material/help:"}


def verdict(d) -> None:
    VERDICT_BOX.get(d.verdict, st.info)(f"#### {d.headline}", icon=VERDICT_ICON.get(d.verdict))


@st.cache_resource(show_spinner=False)
def _chart_renderer():
    """One headless browser for every brief this server builds (starting one costs seconds)."""
    from specdec.present.chart_images import ChartRenderer, ChartsUnavailable
    try:
        return ChartRenderer()
    except ChartsUnavailable:
        return None


def brief_pdf_builder(a, d):
    """A no-argument callable for st.download_button: the PDF is built only when the button is clicked
    (every chart goes through a headless browser: seconds of work). Without a browser the brief still
    comes, with a note in place of the charts."""
    def build() -> bytes:
        from specdec.present import report
        failed = []
        pdf = report.build_brief(a, decision=d, renderer=_chart_renderer(), on_warning=failed.append)
        if failed:  # a dead browser: start a fresh one next time
            _chart_renderer.clear()
        return pdf
    return build
