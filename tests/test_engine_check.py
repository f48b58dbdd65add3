"""The what-if checked against an engine run (analysis/engine_check.py): the llama.cpp profile fitted on the
baseline's levels, projected vs measured per (γ, concurrency) with the error, in the brief and on Explore.
Synthetic engine blocks on the committed tiny_run fixture; no server, no model run."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path

import pytest

from specdec import results
from specdec.analysis import engine_check
from specdec.analysis.summary import analyze

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_run" / "results.json"
A_S, B_S = 0.05, 0.01  # the synthetic llama.cpp: one forward over k tokens = 50 ms + 10 ms · k


def _level(c: int, itl: float) -> dict:
    d = {"p50": itl, "p90": itl, "p99": itl, "mean": itl}
    return {"concurrency": c, "request_rate": None, "duration_s": 1.0, "requests": 8, "output_tokens": 64,
            "output_tokens_per_s": 64.0, "requests_per_s": 8.0, "ttft_s": d, "itl_s": d, "e2e_s": d,
            "acceptance": None, "per_request": []}


def engine_block(engine: str = "llama.cpp", concurrency=(1, 2, 4)) -> dict:
    base = {"label": "baseline", "url": "http://127.0.0.1:1", "draft_length": None, "launch": None,
            "levels": [_level(c, A_S + B_S * c) for c in concurrency]}
    spec = {"label": "spec-g2", "url": "http://127.0.0.1:2", "draft_length": 2, "launch": ["llama-server"],
            "levels": [_level(c, 0.1) for c in concurrency]}
    rows = [{"label": "spec-g2", "draft_length": 2, "concurrency": c, "n": 8, "baseline_tokens_per_s": 10.0,
             "sd_tokens_per_s": 6.0, "wall_ratio": 0.6, "ratio": {"estimate": 0.6, "lo": 0.5, "hi": 0.7},
             "itl_ratio": {"estimate": 1.5, "lo": 1.4, "hi": 1.6}, "baseline_itl_p50_s": 0.06, "sd_itl_p50_s": 0.1,
             "alpha": 0.6, "tau": 2.5, "per_position": [0.8, 0.7], "drafts": 10, "draft_tokens": 20, "accepted": 15}
            for c in concurrency]
    return {"engine": engine, "version": "test", "mode": "local", "model": "qwen", "evidence": "test",
            "status": "complete", "error": None,
            "settings": {"prompts": 8, "max_new_tokens": 8, "concurrency": list(concurrency), "request_rate": None},
            "sides": [base, spec], "levels": rows,
            "decision": {"per_level": [], "pays_up_to": None, "crossover": None, "headline": "SD does not pay."}}


def merged(engine: dict) -> dict:
    data = results.load(FIXTURE)
    data.update(schema_version=2, engine=engine)
    return results.validate(data)


def test_profile_is_fitted_on_the_baseline_and_projection_follows_the_round_model():
    data = merged(engine_block())
    check = engine_check.projected_vs_measured(data)  # no in-process analysis: the engine's own τ
    prof = check["profile"]
    assert prof["a_s"] == pytest.approx(A_S) and prof["b_s"] == pytest.approx(B_S)
    # tiny_run's target and draft are the same size: a draft forward costs what a 1-token target forward does
    assert prof["draft_step_s"] == pytest.approx(A_S + B_S)
    rows = {r["concurrency"]: r for r in check["rows"]}
    assert set(rows) == {1, 2, 4}
    t = lambda k: A_S + B_S * k  # noqa: E731
    for c, r in rows.items():
        want = 2.5 * t(c) / (c * 2 * t(1) + t(c * 3))  # τ · t(C) / (C·γ·t_d + t(C·(γ + 1)))
        assert r["projected"] == pytest.approx(want) and r["tau_source"] == "engine counters"
        assert r["measured"] == 0.6 and r["error"] == pytest.approx(want / 0.6 - 1)
    assert rows[1]["projected"] == pytest.approx(0.75)  # 2.5 · 0.06 / (0.12 + 0.08)


def test_in_process_acceptance_is_what_the_check_carries_over():
    data = merged(engine_block())
    check = engine_check.projected_vs_measured(data, analyze(data))
    assert check["rows"] and {r["tau_source"] for r in check["rows"]} == {"in-process run"}
    assert all(r["tau"] != 2.5 for r in check["rows"])  # the fixture's own τ at γ = 2, not the engine's


def test_no_check_for_unknown_hardware_missing_sizes_or_one_level():
    assert engine_check.projected_vs_measured(merged(engine_block("vllm")))["rows"] == []
    one = engine_check.projected_vs_measured(merged(engine_block(concurrency=(1,))))
    assert one["rows"] == [] and "two or more concurrency levels" in one["note"]
    only = {"schema_version": 2, "manifest": {"models": {"target": {"parameters": 0}}}, "prompts": [],
            "engine": engine_block()}
    assert "no model sizes" in engine_check.projected_vs_measured(only)["note"]


def test_brief_engine_section_shows_projected_vs_measured():
    import pypdf

    from specdec.present import report
    pdf = report.build_brief(merged(engine_block()), charts_on=False)
    text = " ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    assert "projected vs measured throughput ratio" in text and "Error = projected / measured" in text
    vllm = report.build_brief(merged(engine_block("vllm")), charts_on=False)
    assert "not checked" in " ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(vllm)).pages)


def test_explore_shows_the_check_table(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest
    monkeypatch.setenv("SPECDEC_STORE", str(tmp_path / "runs.sqlite"))
    data = merged(engine_block())
    at = AppTest.from_file(str(Path(__file__).parents[1] / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/explore.py").run()
    at.radio(key="_src_kind_widget").set_value("Upload results.json").run()
    at.file_uploader(key="src_upload").set_value(("m.json", json.dumps(copy.deepcopy(data)).encode(),
                                                   "application/json")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("checked against this engine run" in m.value for m in at.markdown)
    table = next(d.value for d in at.dataframe if "projected" in d.value.columns)
    assert list(table["concurrency"]) == [1, 2, 4] and table["error"].str.endswith("%").all()


def test_decide_prints_the_check_and_gives_it_in_json(tmp_path, capsys):
    from specdec import cli
    path = tmp_path / "results.json"
    results.dump_atomic(merged(engine_block()), path)
    assert cli.main(["decide", "--results", str(path), "--hardware", "this-machine"]) == 0
    out = capsys.readouterr().out
    assert "checked against the engine run" in out and "in-process run" in out
    assert cli.main(["decide", "--results", str(path), "--hardware", "this-machine", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["engine_check"]["rows"]
    assert [r["concurrency"] for r in rows] == [1, 2, 4] and all("error" in r for r in rows)
