"""The Run page's engine backend (issue 14, item 6) against the fake OpenAI-compatible servers of test_engines:
the form's checks (bad URL → one line, nothing lost), the engine job through the measuring process and jobs.py
into the run store, live progress and Cancel keeping the finished levels. No model, no llama-server."""

from __future__ import annotations

import functools
import json
import time

import pytest

from specdec import config
from specdec.engines import request
from specdec.errors import SpecdecError
from specdec.measure import workloads
from specdec.measure.worker import Worker
from specdec.store import Store
from test_app import metrics, open_page, texts, wait_for
from test_engines import Fake, serve  # noqa: F401  (serve: the fixture starting fake servers)


@pytest.fixture(autouse=True)
def store_path(tmp_path, monkeypatch):
    path = tmp_path / "runs.sqlite"
    monkeypatch.setenv("SPECDEC_STORE", str(path))
    return path


def engine_page(mode: str = "urls"):
    at = open_page("run")
    at.session_state["wl_sample_size"] = 4
    at.radio(key="run_backend").set_value("engine").run()
    at.radio(key="eng_mode").set_value(mode).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def start_button(at):
    return next(b for b in at.button if b.label == "Start engine run")


# ---- the form ----

def test_check_url_and_levels_rules():
    assert request.check_url(" http://10.0.0.5:8000/v1/ ", "u") == "http://10.0.0.5:8000"  # remote hosts allowed
    assert request.check_url("https://gpu.example/serve", "u") == "https://gpu.example/serve"
    for bad, words in [("ftp://h/x", r"not an http\(s\) URL"), ("file:///etc/passwd", r"not an http\(s\) URL"),
                       ("http://u:p@h:8000", "user name and password"), ("http://h:8000/?x=1", r"no \?query"),
                       ("http://h:99999", "bad port"), ("http://h\n:1", "control characters"), ("", "enter the")]:
        with pytest.raises(SpecdecError, match=words) as info:
            request.check_url(bad, "spec URL")
        assert "\n" not in str(info.value)
    assert request.check_url("", "metrics URL", required=False) is None
    with pytest.raises(SpecdecError, match="whole numbers"):
        request.from_form("local", draft_lengths="2,x", concurrency="1", max_new_tokens=8)
    with pytest.raises(SpecdecError, match="draft lengths must be"):
        request.from_form("local", draft_lengths="0,4", concurrency="1", max_new_tokens=8)
    with pytest.raises(SpecdecError, match="from 1 to 64 on the local llama-server"):
        request.from_form("local", draft_lengths="2", concurrency="1,128", max_new_tokens=8)
    assert request.from_form("urls", concurrency="1,128", max_new_tokens=8, baseline_url="http://a:1",
                             spec_url="http://b:1").concurrency == (1, 128)  # a fleet takes more
    with pytest.raises(SpecdecError, match="same server"):
        request.from_form("urls", concurrency="1", max_new_tokens=8, baseline_url="http://h:1", spec_url="http://h:1/")
    req = request.from_form("local", draft_lengths="4, 2,2", concurrency="4,1", max_new_tokens=8)
    assert req.draft_lengths == (2, 4) and req.concurrency == (1, 4) and req.levels == 6


def test_engine_form_defaults_and_bad_url_is_one_line_with_nothing_lost():
    at = engine_page("local")
    # the CLI's defaults, from config.py
    assert at.text_input(key="eng_gammas").value == ",".join(map(str, config.ENGINE_DRAFT_LENGTHS))
    assert at.text_input(key="eng_conc").value == ",".join(map(str, config.ENGINE_CONCURRENCY))
    assert at.number_input(key="eng_max_new").value == config.DEFAULT_MAX_NEW_TOKENS
    at.radio(key="eng_mode").set_value("urls").run()
    at.text_input(key="eng_base_url").set_value("http://127.0.0.1:8000").run()
    at.text_input(key="eng_spec_url").set_value("ftp://127.0.0.1:8001").run()
    at.text_input(key="eng_conc").set_value("1,4").run()
    assert len(at.error) == 1 and "speculative URL" in at.error[0].value and "not an http(s) URL" in at.error[0].value
    assert "\n" not in at.error[0].value and not at.exception
    assert start_button(at).disabled
    assert at.text_input(key="eng_base_url").value == "http://127.0.0.1:8000"  # nothing the user typed is lost
    assert at.text_input(key="eng_spec_url").value == "ftp://127.0.0.1:8001"
    assert at.text_input(key="eng_conc").value == "1,4"
    at.text_input(key="eng_spec_url").set_value("http://127.0.0.1:8001").run()
    assert not at.error and not start_button(at).disabled
    at.radio(key="run_backend").set_value("in-process").run()  # away to the in-process form and back
    at.radio(key="run_backend").set_value("engine").run()
    assert at.text_input(key="eng_spec_url").value == "http://127.0.0.1:8001"


# ---- the job ----

def test_engine_job_runs_through_jobs_into_the_run_store(serve, tmp_path, store_path):  # noqa: F811
    base, spec = serve(Fake(per_token_s=0.002)), serve(Fake(per_token_s=0.001, spec=True))
    path = tmp_path / "w.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"question {i}", "category": "qa"}) + "\n" for i in range(4)))
    seen = []
    worker = Worker(store_factory=functools.partial(Store, store_path), heads_root=tmp_path / "heads", isolate=False)
    req = request.from_form("urls", concurrency="1,2", max_new_tokens=6, baseline_url=base, spec_url=spec)
    worker.start_engine_run(req, workloads.load_workload(str(path)))
    while worker.status().busy:
        if worker.status().engine is not None:
            seen.append(worker.status().engine)
        time.sleep(0.005)
    status = worker.status()
    assert status.state == "complete" and status.kind == "engine" and status.run_id, status.error
    assert status.engine.level == status.engine.levels == 4 and status.engine.done == status.engine.total == 4
    assert status.engine.tokens_per_s > 0
    data = Store(store_path).load_run(status.run_id)
    assert data["manifest"]["status"] == "complete" and data["prompts"] == []
    assert [r["concurrency"] for r in data["engine"]["levels"]] == [1, 2]
    out = next((tmp_path / request.ENGINE_RUNS_DIRNAME).iterdir())
    assert (out / "results.json").is_file()  # the folder beside the run store


def urls_page(base: str, spec: str, max_new_tokens: int):
    """The Run page's engine form in URL mode, filled in for levels 1 and 2."""
    at = engine_page("urls")
    at.text_input(key="eng_base_url").set_value(base)
    at.text_input(key="eng_spec_url").set_value(spec)
    at.text_input(key="eng_conc").set_value("1,2")
    at.number_input(key="eng_max_new").set_value(max_new_tokens)
    return at.run()


def test_run_page_engine_run_in_the_measuring_process_then_explore(serve, store_path):  # noqa: F811
    base = serve(Fake(per_token_s=0.002))
    spec = serve(Fake(per_token_s=0.001, spec=True, timings=lambda body: {"draft_n": 4, "draft_n_accepted": 3}))
    at = urls_page(base, spec, max_new_tokens=6)
    start_button(at).click().run()
    wait_for(at, lambda a: any("Engine run finished" in s.value for s in a.success))
    runs = Store(store_path).list_runs()
    assert len(runs) == 1 and runs[0]["status"] == "complete"
    next(b for b in at.button if b.label == "Explore this run").click().run()
    assert at.title[0].value == "3 · Explore"
    assert any(e.label == "Measured on the serving engine: vllm" for e in at.expander)
    table = next(d.value for d in at.dataframe if "category" in d.value.columns)  # per-category acceptance
    assert set(table["α"]) == {0.75}


def test_run_page_engine_progress_and_cancel_keep_the_finished_level(serve, store_path):  # noqa: F811
    fake = Fake(per_token_s=0.05)
    base = serve(fake)
    spec = serve(Fake(per_token_s=0.05, spec=True))
    at = urls_page(base, spec, max_new_tokens=20)
    start_button(at).click().run()
    n = 4
    deadline = time.monotonic() + 180
    while fake.started < 1 + n + 1 and time.monotonic() < deadline:  # warm-up, level C=1, first request of C=2
        time.sleep(0.05)
    assert fake.started >= 1 + n + 1, "the engine run never reached its second level"
    wait_for(at, lambda a: "Level" in metrics(a))
    assert metrics(at)["Level"].endswith("/ 4") and "Output tokens/s" in metrics(at)
    next(b for b in at.button if b.label == "Cancel").click().run()
    wait_for(at, lambda a: any("Engine run cancelled" in w.value for w in a.warning))
    runs = Store(store_path).list_runs()
    assert len(runs) == 1 and runs[0]["status"] == "interrupted", texts(at.warning)
    eng = Store(store_path).load_run(runs[0]["run_id"])["engine"]
    assert eng["status"] == "interrupted"
    assert [lv["concurrency"] for lv in eng["sides"][0]["levels"]] == [1]
    time.sleep(2.5)  # Cancel stops the load: no request beyond the two in flight is sent (one takes 1 s here)
    assert fake.started <= 1 + n + 2


def test_in_thread_cancel_stops_the_engine_run_after_the_level_in_progress(serve, tmp_path, store_path):  # noqa: F811
    """Worker(isolate=False) has no signal to send: the engine run asks should_stop after each level."""
    fake = Fake(per_token_s=0.1)
    base, spec = serve(fake), serve(Fake(per_token_s=0.1, spec=True))
    path = tmp_path / "w.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"question {i}", "category": "qa"}) + "\n" for i in range(3)))
    worker = Worker(store_factory=functools.partial(Store, store_path), heads_root=tmp_path / "heads", isolate=False)
    req = request.from_form("urls", concurrency="1,2,4", max_new_tokens=5, baseline_url=base, spec_url=spec)
    worker.start_engine_run(req, workloads.load_workload(str(path)))
    deadline = time.monotonic() + 120
    while fake.started < 2 and time.monotonic() < deadline:  # the warm-up and level 1 under way
        time.sleep(0.01)
    worker.cancel()  # level 1 takes 1.5 s, so it is normally still under way; on a loaded machine level 2 may
    assert worker.join(120)  # have begun before the flag was seen — either way the run stops after that level
    status = worker.status()
    assert status.state == "interrupted" and status.run_id
    eng = Store(store_path).load_run(status.run_id)["engine"]
    assert eng["status"] == "interrupted" and [s["label"] for s in eng["sides"]] == ["baseline"]
    levels = [lv["concurrency"] for lv in eng["sides"][0]["levels"]]
    assert levels in ([1], [1, 2])
    assert fake.started == 1 + 3 * len(levels)  # the warm-up and the levels it kept: nothing sent after them
