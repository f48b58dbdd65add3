"""Engine backend: /metrics parsers per engine, the streaming client against a fake OpenAI-compatible
server (timeouts, HTTP 500, wrong model, stream cut mid-way: one-line errors, nothing recorded), an
engine-run end to end over two fake servers, and a real llama-server on the bundled GGUFs (skipped with
a reason when the binary is not built; .ci/run builds it)."""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from specdec import cli, results
from specdec.engines import client, detect, load, metrics
from specdec.engines.client import Endpoint, EngineError
from specdec.errors import SpecdecError

# ---- /metrics in each engine's documented format ------------------------------------------------

VLLM_TOTAL = """\
# HELP vllm:spec_decode_num_drafts_total Number of spec decoding drafts.
# TYPE vllm:spec_decode_num_drafts_total counter
vllm:spec_decode_num_drafts_total{engine="0",model_name="T"} 100.0
vllm:spec_decode_num_drafts_total{engine="1",model_name="T"} 50.0
# TYPE vllm:spec_decode_num_draft_tokens_total counter
vllm:spec_decode_num_draft_tokens_total{engine="0",model_name="T"} 400.0
vllm:spec_decode_num_draft_tokens_total{engine="1",model_name="T"} 200.0
# TYPE vllm:spec_decode_num_accepted_tokens_total counter
vllm:spec_decode_num_accepted_tokens_total{engine="0",model_name="T"} 240.0
vllm:spec_decode_num_accepted_tokens_total{engine="1",model_name="T"} 120.0
# TYPE vllm:spec_decode_num_accepted_tokens_per_pos_total counter
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="T",position="0"} 90.0
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="T",position="1"} 70.0
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="T",position="2"} 50.0
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="T",position="3"} 30.0
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="1",model_name="T",position="0"} 45.0
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="1",model_name="T",position="1"} 35.0
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="1",model_name="T",position="2"} 25.0
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="1",model_name="T",position="3"} 15.0
vllm:num_requests_running{engine="0",model_name="T"} 0.0
"""

# LLM.get_metrics() style names (no _total), one engine label.
VLLM_PLAIN = "\n".join(line.replace("_total{", "{").replace("_total ", " ") for line in VLLM_TOTAL.splitlines()
                       if 'engine="1"' not in line)

# llama-server --metrics, as tools/server/server-task.cpp writes it.
LLAMACPP = """\
# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 1234
# HELP llamacpp:spec_decode_num_draft_tokens_total Speculative: Total draft tokens generated
# TYPE llamacpp:spec_decode_num_draft_tokens_total counter
llamacpp:spec_decode_num_draft_tokens_total 60
# HELP llamacpp:spec_decode_num_accepted_tokens_total Speculative: Total draft tokens accepted by the target model
# TYPE llamacpp:spec_decode_num_accepted_tokens_total counter
llamacpp:spec_decode_num_accepted_tokens_total 33
# HELP llamacpp:spec_decode_num_drafts_total Speculative: Total speculative decoding verification steps
# TYPE llamacpp:spec_decode_num_drafts_total counter
llamacpp:spec_decode_num_drafts_total 15
# HELP llamacpp:requests_processing Number of requests processing
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 0
# HELP llamacpp:spec_decode_num_accepted_tokens_per_pos_total Accepted tokens per draft position
# TYPE llamacpp:spec_decode_num_accepted_tokens_per_pos_total counter
llamacpp:spec_decode_num_accepted_tokens_per_pos_total{position="0"} 12
llamacpp:spec_decode_num_accepted_tokens_per_pos_total{position="1"} 10
llamacpp:spec_decode_num_accepted_tokens_per_pos_total{position="2"} 7
llamacpp:spec_decode_num_accepted_tokens_per_pos_total{position="3"} 4
"""

SGLANG = """\
# TYPE sglang:spec_accept_length gauge
sglang:spec_accept_length{model_name="T"} 2.7
sglang:num_running_reqs{model_name="T"} 0.0
"""


def test_vllm_counters_sum_engine_labels_with_total_suffix():
    samples = metrics.parse_prometheus(VLLM_TOTAL)
    assert metrics.detect_engine(samples) == "vllm"
    c = metrics.spec_counters(samples, "vllm")
    assert (c.drafts, c.draft_tokens, c.accepted) == (150, 600, 360)
    assert c.per_pos == (135, 105, 75, 45)
    acc = metrics.acceptance(c)
    assert acc["alpha"] == pytest.approx(0.6) and acc["tau"] == pytest.approx(1 + 360 / 150)
    # Σ unconditional per-position rates + 1 = τ (design.md)
    assert sum(acc["per_position"]) + 1 == pytest.approx(acc["tau"])


def test_vllm_counters_without_total_suffix():
    c = metrics.spec_counters(metrics.parse_prometheus(VLLM_PLAIN), "vllm")
    assert (c.drafts, c.draft_tokens, c.accepted, c.per_pos) == (100, 400, 240, (90, 70, 50, 30))


def test_llamacpp_counters_and_window_difference():
    samples = metrics.parse_prometheus(LLAMACPP)
    assert metrics.detect_engine(samples) == "llama.cpp"
    after = metrics.spec_counters(samples, "llama.cpp")
    before = metrics.SpecCounters(5, 20, 13, (4, 4, 3, 2))
    w = after.minus(before)
    assert (w.drafts, w.draft_tokens, w.accepted, w.per_pos) == (10, 40, 20, (8, 6, 4, 2))
    acc = metrics.acceptance(w)
    assert acc["alpha"] == 0.5 and acc["tau"] == 3.0 and acc["per_position"] == [0.8, 0.6, 0.4, 0.2]
    with pytest.raises(EngineError, match="went down"):
        before.minus(after)


def test_no_spec_counters_and_sglang_per_request_tau():
    samples = metrics.parse_prometheus(SGLANG)
    assert metrics.detect_engine(samples) == "sglang"
    assert metrics.spec_counters(samples, "sglang") is None  # gauges only
    assert metrics.spec_counters(metrics.parse_prometheus("llamacpp:prompt_tokens_total 3\n"), "llama.cpp") is None
    ms = [_m(64, {"spec_verify_ct": 20}), _m(32, {"spec_verify_ct": 12}), _m(10, {})]
    assert metrics.per_request_tau(ms) == pytest.approx(96 / 32)
    assert metrics.acceptance(metrics.SpecCounters(0, 0, 0, ()))["tau"] is None


def _m(tokens, fields):
    return client.Measurement("p", "c", 0.0, 0.1, 1.0, tokens, tokens, "x", "length", fields)


# ---- a fake OpenAI-compatible server ---------------------------------------------------------------

class Fake:
    """Behaviour switches for one fake server; counters grow per finished request like an SD engine's."""

    def __init__(self, model="tiny", mode="ok", tokens=None, per_token_s=0.0, spec=False, listed=None, timings=None):
        self.model, self.mode, self.tokens, self.per_token_s, self.spec = model, mode, tokens, per_token_s, spec
        self.timings = timings  # body → llama.cpp's per-response `timings` dict for the final chunk, or None
        self.listed = listed or [model]
        self.served = 0
        self.started = 0  # completion requests received (a test can wait for load to be under way)
        self.in_flight = self.peak = 0  # streams open now, and the most open at once
        self.gate: threading.Barrier | None = None  # when set, each stream waits there before its first token
        self.lock = threading.Lock()

    def metrics_text(self) -> str:
        n = self.served if self.spec else 0
        return (f'vllm:spec_decode_num_drafts_total{{engine="0"}} {4 * n}\n'
                f'vllm:spec_decode_num_draft_tokens_total{{engine="0"}} {16 * n}\n'
                f'vllm:spec_decode_num_accepted_tokens_total{{engine="0"}} {8 * n}\n'
                + "".join(f'vllm:spec_decode_num_accepted_tokens_per_pos_total{{engine="0",position="{i}"}} {k * n}\n'
                          for i, k in enumerate((3, 2, 2, 1))))


SILENT_S = 8.0  # the "slow" server's pause after its first chunk: four times the client's read timeout in the test


def _handler(fake: Fake):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def _send(self, status, body: bytes, ctype="application/json"):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/v1/models":
                self._send(200, json.dumps({"data": [{"id": m, "owned_by": "vllm"} for m in fake.listed]}).encode())
            elif self.path == "/metrics":
                self._send(200, fake.metrics_text().encode(), "text/plain")
            elif self.path == "/version":
                self._send(200, b'{"version": "0.0-fake"}')
            else:
                self._send(404, b"{}")

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with fake.lock:
                fake.started += 1
            if fake.mode == "500":
                return self._send(500, b'{"error": {"message": "boom"}}')
            if body["model"] not in fake.listed:
                return self._send(404, b'{"error": "The model does not exist."}')
            n = fake.tokens or body["max_tokens"]
            with fake.lock:
                fake.in_flight += 1
                fake.peak = max(fake.peak, fake.in_flight)
            if fake.gate is not None:
                try:
                    fake.gate.wait(timeout=60)  # bounds a hang only: the barrier opens once enough streams are open
                except threading.BrokenBarrierError:
                    return self._send(500, b'{"error": {"message": "fewer streams in flight than the gate needs"}}')
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            answer = fake.model if fake.mode != "liar" else "someone-else"

            def event(obj):
                data = b"data: " + json.dumps(obj).encode() + b"\n\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            for i in range(n):
                if fake.mode == "slow" and i == 1:
                    time.sleep(SILENT_S)
                if fake.mode == "cut" and i == 3:
                    with fake.lock:
                        fake.in_flight -= 1
                    self.wfile.flush()
                    self.connection.shutdown(2)  # the stream dies mid-way, no final chunk
                    return
                time.sleep(fake.per_token_s)
                event({"model": answer, "choices": [{"index": 0, "delta": {"content": f"t{i} "},
                                                     "finish_reason": None}]})
            final = {"model": answer, "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}
            if fake.timings:
                final["timings"] = fake.timings(body)
            event(final)
            event({"model": answer, "choices": [], "usage": {"completion_tokens": n, "prompt_tokens": 5}})
            with fake.lock:
                fake.served += 1
                fake.in_flight -= 1  # before the last bytes: the client cannot start its next request earlier
            data = b"data: [DONE]\n\n"
            self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data))
            self.wfile.flush()
    return H


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):  # a client that gave up
            super().handle_error(request, client_address)


@pytest.fixture
def serve():
    servers = []

    def start(fake: Fake) -> str:
        httpd = _QuietServer(("127.0.0.1", 0), _handler(fake))
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def _body(ep, n=6):
    return client.request_body(ep, [{"role": "user", "content": "hi"}], n, {"temperature": 0})


def test_stream_measures_ttft_itl_tokens(serve):
    url = serve(Fake(per_token_s=0.01))
    ep = Endpoint(url, "tiny")
    m = client.stream(ep, _body(ep, 6), "p1", "cat")
    assert m.output_tokens == 6 and m.chunks == 6 and m.text.startswith("t0 t1")
    assert 0 < m.ttft_s < m.e2e_s and m.itl_s == pytest.approx((m.e2e_s - m.ttft_s) / 5)
    assert m.finish_reason == "length"


@pytest.mark.parametrize("fake, timeout, message", [
    (Fake(mode="500"), 5.0, r"HTTP 500 .*boom"),
    (Fake(mode="slow"), 2.0, r"stream silent for 2 s after 1 chunks"),  # far below SILENT_S, far above a stall
    (Fake(mode="cut"), 5.0, r"stream cut after 3 chunks"),
    (Fake(mode="liar"), 5.0, r"answered as model 'someone-else', not 'tiny'"),
])
def test_engine_failures_are_one_line_errors(serve, fake, timeout, message):
    url = serve(fake)
    ep = Endpoint(url, "tiny", read_timeout_s=timeout)
    with pytest.raises(EngineError, match=message) as info:
        client.stream(ep, _body(ep), "p1")
    assert "\n" not in str(info.value)


def test_unreachable_and_wrong_model_are_one_line_errors(serve):
    url = serve(Fake(listed=["other-model"]))
    with pytest.raises(EngineError, match=r"serves other-model, not 'tiny'"):
        detect.detect(url, "tiny")
    ep = Endpoint("http://127.0.0.1:9", "tiny")  # discard port: nothing listens
    with pytest.raises(EngineError, match=r"after 3 tries"):
        client.stream(ep, _body(ep))


def test_a_failed_request_stops_the_level_and_nothing_is_recorded(serve):
    url = serve(Fake(mode="cut"))
    ep = Endpoint(url, "tiny")
    jobs = [load.Job(f"p{i}", "c", _body(ep)) for i in range(4)]
    with pytest.raises(EngineError, match="stream cut"):
        load.run_level(ep, jobs, 2)


def test_closed_loop_keeps_concurrency_requests_in_flight(serve):
    """Counted at the server, not timed: one level sends one request at a time; at concurrency 4 the server
    holds every stream at a barrier of 4, which opens only if the load keeps all four in flight at once."""
    fake = Fake(per_token_s=0.02)
    url = serve(fake)
    ep = Endpoint(url, "tiny")
    jobs = [load.Job(f"p{i}", "c", _body(ep, 5)) for i in range(4)]
    one = load.run_level(ep, jobs, 1)
    assert len(one.measurements) == 4 and fake.peak == 1
    fake.peak, fake.gate = 0, threading.Barrier(4)
    four = load.run_level(ep, jobs, 4)
    assert len(four.measurements) == 4 and fake.peak == 4
    fake.gate = None
    poisson = load.run_level(ep, jobs, 4, request_rate=50.0)
    assert sorted(m.prompt_id for m in poisson.measurements) == ["p0", "p1", "p2", "p3"]


def _workload(tmp_path, n=4) -> Path:
    path = tmp_path / "w.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"question {i}", "category": "qa"}) + "\n" for i in range(n)))
    return path


def test_engine_run_over_urls_writes_levels_acceptance_and_ratio(serve, tmp_path, capsys, monkeypatch):
    # The baseline's sleeps put a floor of 8 × 40 ms under each of its requests; the speculative side costs only
    # its overhead, so the ratio shows the difference even on a loaded machine (a 4× gap of 20 vs 5 ms did not).
    base = serve(Fake(per_token_s=0.04))
    spec = serve(Fake(per_token_s=0.0, spec=True))
    out = tmp_path / "out"
    rc = cli.main(["engine-run", "--workload", str(_workload(tmp_path, 8)), "--out", str(out), "--baseline-url", base,
                   "--spec-url", spec, "--concurrency", "1,2", "--max-new-tokens", "8"])
    assert rc == 0, capsys.readouterr().err
    data = results.load(out / "results.json")
    assert data["schema_version"] == 2 and data["prompts"] == []
    eng = data["engine"]
    assert eng["engine"] == "vllm" and eng["version"] == "0.0-fake" and eng["model"] == "tiny"
    rows = {r["concurrency"]: r for r in eng["levels"]}
    assert set(rows) == {1, 2}
    for r in rows.values():
        # the fake adds 4 drafts, 16 draft tokens, 8 accepted per request: α 0.5, τ 3 over exactly the level
        assert r["alpha"] == pytest.approx(0.5) and r["tau"] == pytest.approx(3.0)
        assert r["per_position"] == pytest.approx([0.75, 0.5, 0.5, 0.25])
        assert r["ratio"]["estimate"] > 1.5 and r["ratio"]["lo"] is not None
        assert r["itl_ratio"]["estimate"] < 1
    assert "SD" in eng["decision"]["headline"]
    assert "ratio (95% CI)" in capsys.readouterr().out
    # The brief of an engine-only file shows the engine's verdict and table; merged into an in-process run's
    # results.json, the same section sits beside the in-process verdict.
    from specdec.present import report
    import io
    import pypdf
    text = lambda pdf: " ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)  # noqa: E731
    alone = text(report.build_brief(data, charts_on=False))
    assert "Measured on the serving engine: vllm" in alone and "SD pays" in alone
    merged = results.load(Path(__file__).parent / "fixtures" / "tiny_run" / "results.json")
    merged.update(schema_version=2, engine=eng)
    both = text(report.build_brief(results.validate(merged), charts_on=False))
    assert "go / no-go brief" in both and "Measured on the serving engine: vllm" in both
    # The Explore page shows the same chart for a results.json holding an engine run.
    from streamlit.testing.v1 import AppTest
    monkeypatch.setenv("SPECDEC_STORE", str(tmp_path / "runs.sqlite"))
    at = AppTest.from_file(str(Path(__file__).parents[1] / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/explore.py").run()
    at.radio(key="_src_kind_widget").set_value("Upload results.json").run()
    at.file_uploader(key="src_upload").set_value(("merged.json", json.dumps(merged).encode(), "application/json")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(e.label == "Measured on the serving engine: vllm" for e in at.expander)
    assert any(eng["decision"]["headline"] == c.value for c in at.caption)


def test_engine_run_that_fails_before_any_level_writes_nothing(serve, tmp_path, capsys):
    base = serve(Fake(mode="cut"))
    spec = serve(Fake())
    out = tmp_path / "out"
    rc = cli.main(["engine-run", "--workload", str(_workload(tmp_path)), "--out", str(out), "--baseline-url", base,
                   "--spec-url", spec, "--concurrency", "1", "--max-new-tokens", "8"])
    err = capsys.readouterr().err
    assert rc == 2 and "stream cut" in err and "Traceback" not in err
    assert not (out / "results.json").exists()


def test_engine_run_that_fails_keeps_finished_levels_marked_failed(serve, tmp_path, capsys):
    """The baseline's levels finish and are written; the speculative server cuts its stream: the file says
    failed and why, and nothing of the failed side is recorded (no level, no ratio)."""
    base = serve(Fake())
    spec = serve(Fake(mode="cut"))
    out = tmp_path / "out"
    rc = cli.main(["engine-run", "--workload", str(_workload(tmp_path)), "--out", str(out), "--baseline-url", base,
                   "--spec-url", spec, "--concurrency", "1,2", "--max-new-tokens", "8"])
    err = capsys.readouterr().err
    assert rc == 2 and "stream cut" in err and "Traceback" not in err
    data = results.load(out / "results.json")
    eng = data["engine"]
    assert eng["status"] == "failed" and "stream cut" in eng["error"]
    assert data["manifest"]["status"] == "failed" and data["manifest"]["finished"]
    assert [s["label"] for s in eng["sides"]] == ["baseline"]
    assert [lv["concurrency"] for lv in eng["sides"][0]["levels"]] == [1, 2]
    assert all(lv["requests"] == 4 for lv in eng["sides"][0]["levels"])
    assert eng["levels"] == [] and eng["decision"]["per_level"] == []
    from specdec.analysis import engine as engine_analysis
    assert "failed" in engine_analysis.status_note(eng) and "baseline C=1, baseline C=2" in engine_analysis.status_note(eng)


def test_sigterm_after_the_first_level_keeps_it_and_not_the_second(serve, tmp_path):
    """Level C=1 finishes and is written before C=2 starts; SIGTERM during C=2 leaves C=1 in results.json,
    marked interrupted, and no trace of C=2. Synchronised on the fake server's request count, not on time."""
    import signal
    import subprocess
    import sys
    fake = Fake(per_token_s=0.05)
    base = serve(fake)
    out = tmp_path / "out"
    n = 3
    proc = subprocess.Popen(
        [sys.executable, "-m", "specdec", "engine-run", "--workload", str(_workload(tmp_path, n)), "--out", str(out),
         "--baseline-url", base, "--spec-url", base, "--concurrency", "1,2", "--max-new-tokens", "40"],
        cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while fake.started < 1 + n + 1 and time.monotonic() < deadline:  # warm-up, level 1, first request of level 2
        time.sleep(0.05)
    assert fake.started >= 1 + n + 1, "engine-run never reached its second level"
    during = results.load(out / "results.json")  # written after level 1, before level 2's first request
    assert during["engine"]["status"] == "running" and during["manifest"]["status"] == "running"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "interrupted"
    eng = results.load(out / "results.json")["engine"]
    assert eng["status"] == "interrupted"
    assert [s["label"] for s in eng["sides"]] == ["baseline"]
    assert [lv["concurrency"] for lv in eng["sides"][0]["levels"]] == [1]
    assert eng["sides"][0]["levels"][0]["requests"] == n


def test_per_category_acceptance_from_per_response_fields():
    from specdec.analysis import engine as engine_analysis
    reqs = [{"category": "code", "output_tokens": 10, "draft_n": 8, "draft_n_accepted": 6},
            {"category": "code", "output_tokens": 10, "draft_n": 8, "draft_n_accepted": 6},
            {"category": "chat", "output_tokens": 10, "draft_n": 16, "draft_n_accepted": 4}]
    cats = engine_analysis.category_acceptance(reqs, gamma=4)
    assert cats["code"]["alpha"] == pytest.approx(0.75) and cats["code"]["tau"] == pytest.approx(4.0)
    assert cats["chat"]["alpha"] == pytest.approx(0.25) and cats["chat"]["tau"] == pytest.approx(2.0)
    assert cats["code"]["requests"] == 2 and cats["chat"]["draft_tokens"] == 16
    assert engine_analysis.category_acceptance(reqs, gamma=None)["code"]["tau"] is None  # URL mode: γ unknown
    sglang = [{"category": "qa", "output_tokens": 30, "spec_verify_ct": 12},
              {"category": "qa", "output_tokens": 10, "spec_verify_ct": 8}]
    qa = engine_analysis.category_acceptance(sglang, gamma=None)["qa"]
    assert qa["tau"] == pytest.approx(2.0) and qa["alpha"] is None  # τ = 40 tokens / 20 verify passes
    assert engine_analysis.category_acceptance([{"category": "x", "output_tokens": 5}], 2) == {}  # vLLM: none


def test_engine_run_keeps_per_response_fields_and_reports_acceptance_per_category(serve, tmp_path, capsys):
    """A llama.cpp-style server returns timings.draft_n / draft_n_accepted per response: they are kept with each
    request, and each level row and the brief give α per category."""
    def timings(body):
        text = body["messages"][-1]["content"]
        return {"draft_n": 8, "draft_n_accepted": 6 if "code" in text else 2, "predicted_ms": 1.5}
    base = serve(Fake())
    spec = serve(Fake(spec=True, timings=timings))
    path = tmp_path / "w.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"{cat} question {i}", "category": cat}) + "\n"
                            for i in range(3) for cat in ("code", "chat")))
    out = tmp_path / "out"
    rc = cli.main(["engine-run", "--workload", str(path), "--out", str(out), "--baseline-url", base,
                   "--spec-url", spec, "--concurrency", "1,2", "--max-new-tokens", "6"])
    assert rc == 0, capsys.readouterr().err
    eng = results.load(out / "results.json")["engine"]
    spec_reqs = [r for lv in eng["sides"][1]["levels"] for r in lv["per_request"]]
    assert {(r["category"], r["draft_n_accepted"]) for r in spec_reqs} == {("code", 6), ("chat", 2)}
    assert all("predicted_ms" not in r for r in spec_reqs)  # only the acceptance fields are kept
    assert all("draft_n" not in r for lv in eng["sides"][0]["levels"] for r in lv["per_request"])
    for row in eng["levels"]:
        assert row["per_category"]["code"]["alpha"] == pytest.approx(0.75)
        assert row["per_category"]["chat"]["alpha"] == pytest.approx(0.25)
        assert row["per_category"]["code"]["requests"] == 3
    import io
    import pypdf
    from specdec.present import report
    pdf = report.build_brief(results.load(out / "results.json"), charts_on=False)
    text = " ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    assert "Acceptance per category" in text and "0.75" in text and "0.25" in text
    from specdec.present import views
    rows = views.engine_category_rows(engine_analysis_by_side(eng))
    assert {(r["category"], r["α"]) for r in rows} == {("code", 0.75), ("chat", 0.25)}
    assert {r["requests"] for r in rows} == {6}  # 3 per category at each of 2 levels


def engine_analysis_by_side(eng):
    from specdec.analysis import engine as engine_analysis
    return engine_analysis.categories_by_gamma(eng)


def test_old_results_files_still_load(tmp_path):
    old = Path(__file__).parent / "fixtures" / "tiny_run" / "results.json"  # recorded at schema_version 1
    data = results.load(old)
    assert data["schema_version"] == 1 and "engine" not in data


# ---- a real llama-server on the bundled pair -------------------------------------------------------

def _llama_server_or_skip():
    from specdec.engines import llamacpp
    path = llamacpp.binary_path()
    if not path.is_file():
        pytest.skip(f"no llama-server at {path} (scripts/install_llama_server.sh builds it; .ci/run does)")
    return llamacpp, path


def test_llama_server_accepts_every_flag_we_emit():
    llamacpp, path = _llama_server_or_skip()
    assert llamacpp.which_help_flags_missing(llamacpp.help_text(path), llamacpp.BASE_FLAGS + llamacpp.SPEC_FLAGS) == []
    assert "--draft-max" not in llamacpp.server_args(Path("t.gguf"), Path("d.gguf"), 3, slots=2, port=1, alias="t")


@pytest.mark.bundled
def test_real_llama_server_speculates_and_matches_greedy_text(tmp_path):
    _llama_server_or_skip()
    from specdec.engines import bench, run
    from specdec.measure import workloads
    try:
        from specdec.engines import llamacpp
        llamacpp.model_gguf("qwen2.5-coder-0.5b-instruct")
    except SpecdecError as exc:
        pytest.skip(str(exc))
    work = workloads.load_workload(_workload(tmp_path, 3))
    plan = run.Plan(concurrency=(1, 2), max_new_tokens=16)
    block = bench.execute(work, plan, tmp_path / "out", engine="llama.cpp", draft_lengths=(3,))
    base, spec = block["sides"]
    assert spec["launch"][spec["launch"].index("--spec-type") + 1] == "draft-simple"
    for lv in spec["levels"]:
        acc = lv["acceptance"]
        assert acc["drafts"] > 0 and acc["draft_tokens"] > 0 and 0 < acc["accepted"] <= acc["draft_tokens"]
        assert 1.0 < acc["tau"] <= 4.0
    for lv in base["levels"]:
        assert lv["acceptance"] is None or lv["acceptance"]["drafts"] == 0
    for b, s in zip(base["levels"], spec["levels"]):
        text = lambda lv: {r["id"]: r["text"] for r in lv["per_request"]}  # noqa: E731
        assert text(b) == text(s)  # greedy: speculation must not change the output
        assert all(r["output_tokens"] == 16 for r in b["per_request"] + s["per_request"])
    assert results.load(tmp_path / "out" / "results.json")["engine"]["levels"]
    assert (tmp_path / "out" / "llama-server-spec-g3.log").stat().st_size > 0


# ---- a server started by specdec never outlives it ----------------------------------------------

FAKE_SERVER = """\
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
HTTPServer(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])), H).serve_forever()
"""

PARENT = """\
import sys, time
from pathlib import Path
from specdec.engines import llamacpp
binary, log = Path(sys.argv[1]), Path(sys.argv[2])
port = llamacpp.free_port()
with llamacpp.LlamaServer(binary, ["--port", str(port)], log, port) as server:
    print(server.proc.pid, flush=True)
    time.sleep(120)
"""


def _alive(pid: int) -> bool:
    import os
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}/stat").exists() else "X"
    return state not in ("Z", "X")  # a zombie has exited: only its parent has not reaped it yet


@pytest.mark.skipif(not Path("/proc").exists(), reason="PR_SET_PDEATHSIG and /proc are Linux's")
def test_a_killed_run_takes_its_llama_server_with_it(tmp_path):
    """SIGKILL (or the OOM killer) gives specdec no chance to clean up: the kernel must stop the server."""
    import os
    import signal
    import subprocess
    import sys
    binary = tmp_path / "llama-server"
    binary.write_text(f"#!{sys.executable}\n{FAKE_SERVER}")
    binary.chmod(0o755)
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(binary), str(tmp_path / "server.log")],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    pid = int(parent.stdout.readline())
    assert _alive(pid)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(timeout=10)
    deadline = time.monotonic() + 30  # the kernel signals at once; the margin is for a loaded machine
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = _alive(pid)
    if alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, "llama-server outlived the specdec process that started it"


def test_sigterm_ends_engine_run_as_interrupted_with_nothing_recorded(serve, tmp_path):
    """`kill <pid>` (systemd, a CI timeout) mid-level: out promptly, one line, no results.json."""
    import signal
    import subprocess
    import sys
    fake = Fake(per_token_s=0.2)
    base = serve(fake)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "specdec", "engine-run", "--workload", str(_workload(tmp_path, 8)), "--out", str(out),
         "--baseline-url", base, "--spec-url", base, "--concurrency", "1", "--max-new-tokens", "50"],
        cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while fake.started < 2 and time.monotonic() < deadline:  # the warm-up, then the first measured request
        time.sleep(0.05)
    assert fake.started >= 2, "engine-run never sent its requests"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)  # a level takes 8 × 10 s: ending well before it means the signal did it
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "interrupted"
    assert not (out / "results.json").exists()
