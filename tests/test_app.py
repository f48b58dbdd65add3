"""Every page of the Streamlit app through AppTest: uploads, sliders, buttons, a real (tiny) run in the
background worker, and page render times. The run store is a temporary file per test."""

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from specdec import methods
from specdec.measure import runplan
from specdec.present import views
from specdec.store import Store

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_WORKLOAD = Path(__file__).parent / "fixtures" / "tiny_workload.jsonl"
TIMEOUT_S = 120  # AppTest's 3 s default is too short for a first analysis on a loaded 2-core machine


# The pages are tested on the small tiny-model run (known categories and prompt ids, fast to analyse);
# the committed recorded example gets its own test below.
TINY_EXAMPLE = Path(__file__).parent / "fixtures" / "tiny_run" / "results.json"
RECORDED_EXAMPLE = views.EXAMPLE_RESULTS


@pytest.fixture(autouse=True)
def store_path(tmp_path, monkeypatch):
    path = tmp_path / "runs.sqlite"
    monkeypatch.setenv("SPECDEC_STORE", str(path))
    monkeypatch.setattr(views, "EXAMPLE_RESULTS", TINY_EXAMPLE)
    return path


def open_page(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT_S)
    at.run()
    if page:
        at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at) -> dict:
    return {m.label: m.value for m in at.metric}


def plain(markdown: str) -> str:
    """User text reaches the page Markdown-escaped (issue 20); compare what the reader sees."""
    return markdown.replace("\\", "")


def texts(elements) -> str:
    return plain("\n".join(str(e.value) for e in elements))


def wait_for(at, done, timeout_s: float = 180.0) -> None:
    """Rerun the script (as the page's timer fragment would) until done(at) holds."""
    deadline = time.monotonic() + timeout_s
    while not done(at):
        assert time.monotonic() < deadline, texts(at.error) or "timed out"
        time.sleep(0.5)
        at.run()
        assert not at.exception, [e.value for e in at.exception]


# ---- 1. workload ----

def test_workload_page_sample_then_upload_and_slider():
    at = open_page()
    assert at.title[0].value == "1 · Workload"
    m = metrics(at)  # a sample workload is preselected, 20 of its 27 prompts (the quick preset's)
    assert m["Prompts to measure"] == "20 of 27" and m["Format"] == "JSON Lines"
    at.radio(key="wl_source").set_value("Upload a file").run()
    bad_line = b'{"prompt": ""}\n'
    at.file_uploader(key="wl_upload").set_value(
        ("mine.jsonl", FIXTURE_WORKLOAD.read_bytes() + bad_line, "application/jsonl")).run()
    assert not at.error
    assert metrics(at)["Prompts to measure"] == "12 of 12"
    assert "Skipped (1)" in texts(at.markdown) and "skipped" in texts(at.markdown)
    at.slider(key="wl_sample_size").set_value(6).run()
    assert "sampled 6 of 12 prompts" in texts(at.markdown)  # every warning is listed
    at.slider(key="wl_sample_size").set_value(12).run()
    assert metrics(at)["Prompts to measure"] == "12 of 12"
    assert len(at.dataframe[1].value) == 12  # the preview table
    cats = at.dataframe[0].value
    assert dict(zip(cats["category"], cats["prompts"])) == {"code": 4, "chat": 4, "extraction": 4}


def test_workload_page_bad_upload_is_one_line():
    at = open_page()
    at.radio(key="wl_source").set_value("Upload a file").run()
    at.file_uploader(key="wl_upload").set_value(("prompts.csv", b"%PDF-1.7 binary", "text/csv")).run()
    assert not at.exception
    assert len(at.error) == 1 and "\n" not in at.error[0].value and "PDF" in at.error[0].value


# ---- 2. run ----

@pytest.mark.slow
def test_run_page_estimates_runs_and_opens_the_run(tiny_model_dirs, store_path):
    at = open_page("run")
    assert at.title[0].value == "2 · Run"
    assert at.selectbox(key="run_preset").value == "quick"
    assert at.text_input(key="run_target").value == "qwen2.5-coder-1.5b-instruct"  # the bundled pair
    at.session_state["wl_sample_size"] = 2
    at.text_input(key="run_target").set_value(str(tiny_model_dirs[0]))
    at.text_area(key="run_draft").set_value(str(tiny_model_dirs[1]))
    at.multiselect(key="run_gammas").set_value([2])
    at.number_input(key="run_max_new").set_value(6)
    at.selectbox(key="run_dtype").set_value("float32")
    at.run()
    assert at.selectbox(key="run_preset").value == "custom"  # edited away from the preset
    assert "Estimated run time" not in metrics(at)
    next(b for b in at.button if b.label == "Load and time models").click().run()
    wait_for(at, lambda a: "Estimated run time" in metrics(a))
    assert "a 6-step timed decode" in texts(at.caption)
    next(b for b in at.button if b.label == "Start run").click().run()
    wait_for(at, lambda a: any("Run finished" in s.value for s in a.success))
    runs = Store(store_path).list_runs()
    assert len(runs) == 1 and runs[0]["n_prompts"] == 2 and runs[0]["status"] == "complete"
    next(b for b in at.button if b.label == "Explore this run").click().run()
    assert at.title[0].value == "3 · Explore"
    assert at.radio(key="_src_kind_widget").value == "Stored run"
    assert at.selectbox(key="_src_run_widget").value == runs[0]["run_id"]
    assert metrics(at)["Prompts"] == "2"


@pytest.mark.slow
def test_run_page_live_progress_cancel_and_one_run_at_a_time(tiny_model_dirs, store_path, monkeypatch):
    # The run holds after its first prompt until the cancel lands (tests/slowload.py): it cannot finish first.
    import functools
    import slowload
    from pages import ui
    from specdec.measure.worker import Worker
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # so the measuring process can unpickle slowload
    monkeypatch.setattr(ui, "Worker", functools.partial(Worker, load_with_drafts=slowload.load_then_hold_after_first_prompt))
    at = open_page("run")
    at.text_input(key="run_target").set_value(str(tiny_model_dirs[0]))
    at.text_area(key="run_draft").set_value(str(tiny_model_dirs[1]))
    at.number_input(key="run_max_new").set_value(48)
    at.session_state["wl_sample_size"] = 27
    at.run()
    next(b for b in at.button if b.label == "Start run").click().run()
    wait_for(at, lambda a: not metrics(a).get("Prompts done", "0 /").startswith("0 /"), timeout_s=120)  # live panel
    assert "Baseline tokens/s" in metrics(at) and "Time left" in metrics(at)
    # A second session sees the job and cannot start another one.
    other = open_page("run")
    assert next(b for b in other.button if b.label == "Start run").disabled
    next(b for b in at.button if b.label == "Cancel").click().run()
    wait_for(at, lambda a: any("Run cancelled" in w.value for w in a.warning))
    run = Store(store_path).list_runs()[0]
    assert run["status"] == "interrupted" and run["n_prompts"] == 1


def test_run_page_failed_model_load_is_one_line(tmp_path):
    at = open_page("run")
    at.text_input(key="run_target").set_value(str(tmp_path / "no-such-model")).run()
    next(b for b in at.button if b.label == "Start run").click().run()
    wait_for(at, lambda a: len(a.error) > 0)
    message = plain(at.error[0].value)
    assert "Run failed" in message and "no-such-model" in message
    assert "\n" not in at.error[0].value and not at.exception


def test_run_page_rejects_bad_settings():
    at = open_page("run")
    at.multiselect(key="run_methods").set_value([]).run()
    assert "choose at least one method" in texts(at.error)
    assert next(b for b in at.button if b.label == "Start run").disabled


def test_run_page_new_methods_reject_bad_input_in_one_line(tmp_path):
    at = open_page("run")
    labels = [methods.spec(f).label for f in methods.FAMILIES]  # every family in the registry, by its label
    assert at.multiselect(key="run_methods").options == labels and labels[:4] == [
        "draft model", "prompt lookup", "layer-skip", "Medusa heads"]
    at.multiselect(key="run_methods").set_value(["layer-skip"]).run()
    assert "The target has **28** layers" in texts(at.caption)  # the bundled target, read without loading it
    assert not at.error and "half of 28 layers" in at.text_input(key="run_layers").placeholder
    for typed, words in (("30", "the target has 28 layers; choose 1 … 27"), ("eight", "whole numbers")):
        at.text_input(key="run_layers").set_value(typed).run()
        assert len(at.error) == 1 and words in at.error[0].value and "\n" not in at.error[0].value
        assert next(b for b in at.button if b.label == "Start run").disabled
    at.multiselect(key="run_methods").set_value(["medusa"]).run()
    assert "Medusa needs trained heads" in at.error[0].value
    assert any(b.label == "Train heads on this workload" for b in at.button)
    # A typed directory (AppTest cannot type into a select box: set it while the box is not drawn).
    at.multiselect(key="run_methods").set_value(["prompt-lookup"]).run()
    at.session_state["run_medusa_heads"] = str(tmp_path / "no-heads")
    at.multiselect(key="run_methods").set_value(["medusa"]).run()
    assert "no-heads: not a Medusa heads directory" in at.error[0].value and not at.exception
    at.switch_page("pages/workload.py").run()
    at.switch_page("pages/run.py").run()  # the choices survive a page switch
    assert at.multiselect(key="run_methods").value == ["medusa"]
    assert at.selectbox(key="run_medusa_heads").value == str(tmp_path / "no-heads")


@pytest.mark.slow
def test_run_page_two_draft_models_and_layer_skip_in_one_run(tiny_model_dirs, store_path, tmp_path):
    other = tmp_path / "draft2"
    other.symlink_to(tiny_model_dirs[1], target_is_directory=True)
    at = open_page("run")
    at.session_state["wl_sample_size"] = 2
    at.text_input(key="run_target").set_value(str(tiny_model_dirs[0]))
    at.text_area(key="run_draft").set_value(f"{tiny_model_dirs[1]}\n{other}\n")
    at.multiselect(key="run_methods").set_value(["draft", "layer-skip"])
    at.multiselect(key="run_gammas").set_value([2])
    at.number_input(key="run_max_new").set_value(6)
    at.selectbox(key="run_dtype").set_value("float32")
    at.run()
    assert "The target has **2** layers" in texts(at.caption) and not at.error
    next(b for b in at.button if b.label == "Load and time models").click().run()
    wait_for(at, lambda a: "Estimated run time" in metrics(a))
    table = at.dataframe[0].value
    # greedy runs are traced: the estimate shows its two parts (real subset, batched traces)
    assert list(table["configuration"]) == ["real subset: 2 prompts", "traced: 2 prompts in 1 batch"]
    next(b for b in at.button if b.label == "Start run").click().run()
    wait_for(at, lambda a: any("Run finished" in s.value for s in a.success))
    assert "target + draft + draft2 + layer-skip L1" in plain(texts(at.success))
    run = Store(store_path).load_run(Store(store_path).list_runs()[0]["run_id"])
    assert set(run["manifest"]["models"]["drafters"]) == {"draft:draft", "draft:draft2", "layer-skip:L1"}
    assert len(run["prompts"]) == 2


@pytest.mark.slow
def test_run_page_trains_heads_then_measures_them(tiny_model_dirs, store_path, monkeypatch):
    # The first training holds two steps in until the cancel lands (tests/slowload.py): it cannot finish first.
    import functools
    import slowload
    from pages import ui
    from specdec.measure.worker import Worker
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # so the measuring process can unpickle slowload
    monkeypatch.setattr(ui, "Worker", functools.partial(Worker, fit=slowload.fit_holding_once))
    at = open_page("run")
    at.session_state["wl_sample_size"] = 4
    at.text_input(key="run_target").set_value(str(tiny_model_dirs[0]))
    at.multiselect(key="run_methods").set_value(["medusa"])
    at.multiselect(key="run_gammas").set_value([2])
    at.number_input(key="run_max_new").set_value(6)
    at.selectbox(key="run_dtype").set_value("float32")
    at.run()
    assert "Medusa needs trained heads" in at.error[0].value
    at.number_input(key="run_train_heads").set_value(2)
    at.number_input(key="run_train_steps").set_value(2000).run()
    next(b for b in at.button if b.label == "Train heads on this workload").click().run()
    wait_for(at, lambda a: "Loss" in metrics(a), timeout_s=120)  # live: stage, loss, time left
    assert metrics(at)["Stage"] == "training" and "Stage time left" in metrics(at)
    assert "Training the heads" in at.get("progress")[0].proto.text
    next(b for b in at.button if b.label == "Cancel").click().run()
    wait_for(at, lambda a: any("Training cancelled" in w.value for w in a.warning))
    assert not at.selectbox(key="run_medusa_heads").options  # nothing saved

    at.number_input(key="run_train_steps").set_value(10).run()
    next(b for b in at.button if b.label == "Train heads on this workload").click().run()
    wait_for(at, lambda a: any("Heads trained and selected" in s.value for s in a.success))
    saved = at.selectbox(key="run_medusa_heads")
    assert saved.value and saved.value.startswith(str(store_path.parent / "heads")) and len(saved.options) == 1
    assert "2 heads, held-out top-1" in saved.options[0] and not at.error
    next(b for b in at.button if b.label == "Start run").click().run()
    wait_for(at, lambda a: any("Run finished" in s.value for s in a.success))
    run = Store(store_path).load_run(Store(store_path).list_runs()[0]["run_id"])
    assert set(run["manifest"]["models"]["drafters"]) == {"medusa", "medusa:train"}
    assert run["manifest"]["models"]["drafters"]["medusa"]["spec"] == saved.value


# ---- 3. explore ----

def test_explore_page_shows_the_example_and_the_gamma_slider_reprojects():
    at = open_page("explore")
    assert at.title[0].value == "3 · Explore"
    assert "Recorded example" in texts(at.info)
    assert at.radio(key="_src_kind_widget").value == "Recorded example"
    at.radio(key="ex_method").set_value("draft").run()
    at.slider(key="ex_gamma").set_value(2).run()
    at2 = metrics(at)
    assert "Measured at γ=2" in texts(at.caption)
    at.slider(key="ex_gamma").set_value(9).run()
    at9 = metrics(at)
    assert at9["τ at γ=9"] != at2["τ at γ=2"] and at9["Speedup"] != at2["Speedup"]
    assert "Projected beyond every γ run" in texts(at.caption)
    # what-if controls change the payoff readout
    speedup = lambda: float(metrics(at)["Best projected speedup"].rstrip("×"))  # noqa: E731
    before = speedup()
    at.selectbox(key="ex_hw").set_value("this-machine").run()
    on_this_machine = speedup()
    at.select_slider(key="ex_batch").set_value(64).run()
    assert "Best γ at batch 64" in metrics(at)
    assert on_this_machine != before  # the hardware what-if changes the payoff (H100 default → this CPU)
    assert "Best γ at batch 1" not in metrics(at) and speedup() != on_this_machine  # the batch what-if too
    # drill-down, per-prompt and cycle views
    at.selectbox(key="ex_cat").set_value("code").run()
    at.selectbox(key="ex_config").set_value(("draft", 4)).run()
    at.selectbox(key="ex_prompt").set_value("code-2").run()
    at.selectbox(key="ex_cycle_config").set_value(("draft", 4)).run()
    html = "".join(h.proto.body for h in at.get("html"))
    assert "round 1" in html and "β" in html and ("bonus" in html or "resampled" in html)
    assert not at.exception and not at.error


@pytest.mark.skipif(not RECORDED_EXAMPLE.is_file(), reason="no recorded example committed")
def test_the_recorded_example_opens_in_explore_and_brief(monkeypatch, analyses):
    """A first-time user sees the committed run of the bundled pair, labelled with where and when."""
    monkeypatch.setattr(views, "EXAMPLE_RESULTS", RECORDED_EXAMPLE)
    import json
    manifest = json.loads(RECORDED_EXAMPLE.read_text())["manifest"]
    for page in ("explore", "brief"):
        at = open_page(page)
        before = len(analyses)
        at.run()  # a rerun (a widget moved): the analysis is cached, nothing heavy may run again
        assert len(analyses) == before, f"{page} rerun on the recorded example analysed the run again"
        banner = texts(at.info).replace("\\", "")  # markdown escapes (2026\\-12…) are rendering, not content
        assert "Recorded example" in banner and manifest["run_id"] in banner
        assert manifest["created"][:10] in banner and manifest["hardware"]["cpu"] in banner
        assert not at.exception and not at.error
    assert at.radio(key="_src_kind_widget").value == "Recorded example"
    assert any(d.value is not None and len(d.value) for d in at.dataframe)  # the segment table


@pytest.mark.skipif(not RECORDED_EXAMPLE.is_file(), reason="no recorded example committed")
def test_run_page_prices_training_heads_from_the_recorded_training(monkeypatch):
    """Before pressing Train: how long collecting and the steps will take, from a recorded training."""
    monkeypatch.setattr(views, "EXAMPLE_RESULTS", RECORDED_EXAMPLE)
    import json
    run = json.loads(RECORDED_EXAMPLE.read_text())
    training = run["manifest"]["models"]["drafters"]["medusa"]["training"]
    at = open_page("run")
    at.multiselect(key="run_methods").set_value(["medusa"]).run()
    at.number_input(key="run_train_steps").set_value(200).run()
    at.number_input(key="run_train_heads").set_value(6).run()
    line = next(c.value for c in at.caption if c.value.startswith("At most about "))
    k = run["manifest"]["models"]["drafters"]["medusa"]["heads"]
    train_s = 200 * training["train_s"] / training["steps"] * 6 / k
    assert f"200 steps ≈ {runplan.format_duration(train_s)}" in line and run["manifest"]["run_id"] in line
    assert not at.exception


def test_explore_upload_results_and_bad_upload():
    at = open_page("explore")
    at.radio(key="_src_kind_widget").set_value("Upload results.json").run()
    at.file_uploader(key="src_upload").set_value(("broken.json", b"{not json", "application/json")).run()
    assert "broken.json is not JSON" in plain(at.error[0].value) and not at.exception
    data = views.example_results_path().read_bytes()
    at.file_uploader(key="src_upload").set_value(("mine.json", data, "application/json")).run()
    assert not at.error
    assert "Uploaded mine.json" in texts(at.caption)
    assert metrics(at)["Prompts"] == "12"


# ---- 4. brief ----

def test_brief_page_verdict_thresholds_and_downloads():
    at = open_page("brief")
    assert at.title[0].value == "4 · Decision brief"
    assert "INSUFFICIENT EVIDENCE" in texts(at.warning)
    assert len(at.markdown) and "prompts in 3 categories" in texts(at.markdown)
    assert set(at.dataframe[0].value["status"]) == {"too-few"}  # 4 prompts a category, 8 needed
    # Lower the bars: the categories are now judged on their own, and the reasons quote the new bars.
    at.number_input(key="th_prompts").set_value(4)
    at.number_input(key="th_segment").set_value(4)
    at.number_input(key="th_speedup").set_value(1.0).run()
    assert "a confident verdict needs ≥ 4, a category ≥ 4" in texts(at.markdown)
    # …but 4 prompts are too few for any interval (MIN_CI_PROMPTS = 8): no category can be judged on its own.
    assert set(at.dataframe[0].value["status"]) == {"too-few"}
    assert "too few prompts (< 8) for an interval" in texts(at.markdown)
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["PDF brief", "results.json", "Per-prompt metrics (CSV)"]


def test_brief_pdf_builder_makes_a_pdf():
    """AppTest cannot read a download button's bytes: call the callable the PDF button is given."""
    import io

    import pypdf

    from pages import ui
    from specdec import results
    from specdec.analysis import summary as analysis
    from specdec.analysis import decision
    a = analysis.analyze(results.load(views.example_results_path()), n_boot=200)
    pdf = ui.brief_pdf_builder(a, decision.decide(a))()
    assert pdf.startswith(b"%PDF")
    text = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    assert "INSUFFICIENT" in text


# ---- speed ----

@pytest.fixture
def analyses(monkeypatch):
    """Every analyze() call the pages make: a rerun must hit the cache, never analyse again. (How fast a
    rerun is belongs to a benchmark, not a unit test; this checks the behaviour that keeps it fast.)"""
    from specdec.analysis import summary
    calls = []
    real = summary.analyze

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(summary, "analyze", counting)
    return calls


def test_page_reruns_and_widget_moves_do_not_analyse_again(analyses):
    at = open_page()
    for page in ("workload", "run", "explore", "brief"):
        at.switch_page(f"pages/{page}.py").run()  # first visit: analysis is computed and cached
        before = len(analyses)
        at.run()
        assert len(analyses) == before, f"{page} analysed the run again on a rerun"
    before = len(analyses)
    at.switch_page("pages/explore.py").run()
    at.slider(key="ex_gamma").set_value(3).run()
    assert len(analyses) == before  # page switch + slider move: projections only, no new analysis
    assert not at.exception
