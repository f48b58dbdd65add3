"""Traced acceptance (issue 15) on tiny models: the rounds derived from one batched target generation
and teacher-forced drafters equal the real decoder's, for every drafter family and γ 1–8, with EOS and
max_new_tokens cuts; batched generation equals one prompt at a time; sampled β matches the real
sampled decoder's acceptance."""

import pytest
import torch

import tiny
from specdec.config import SamplingConfig
from specdec.decoding.drafters import DraftModelDrafter, MedusaDrafter, PromptLookupDrafter, layer_skip_model
from specdec.decoding.loops import baseline_decode, speculative_decode
from specdec.traces import scan
from specdec.traces.generate import HEADS, LAYER, MODEL, TraceDrafter, trace_batch
from test_decoding import prompts
from test_more_drafters import random_heads

GREEDY = SamplingConfig()
GAMMAS = range(1, 9)


@pytest.fixture(scope="module")
def deep():
    return tiny.tiny_qwen2(seed=5, layers=3)


@pytest.fixture(scope="module")
def family(deep):
    """The four drafter families on the 3-layer target: real drafter factories and trace specs."""
    draft = tiny.noisy_copy(deep, noise=0.05)
    view = layer_skip_model(deep, 2)
    heads = random_heads(deep, 3)
    V = deep.config.vocab_size
    real = {"draft": lambda: DraftModelDrafter(draft, GREEDY, None, V),
            "layer-skip:L2": lambda: DraftModelDrafter(view, GREEDY, None, V),
            "medusa": lambda: MedusaDrafter(heads, deep.lm_head, GREEDY, None, V),
            "prompt-lookup": PromptLookupDrafter}
    traced = [TraceDrafter("draft", MODEL, model=draft), TraceDrafter("layer-skip:L2", LAYER, layers=2),
              TraceDrafter("medusa", HEADS, heads=heads)]
    return real, traced


def real_rounds(gen):
    return [(r.drafted, r.accepted, r.emitted) for r in gen.rounds]


def traced_rounds(rs):
    return [(r["drafted"], r["accepted"], r["emitted"]) for r in rs]


@pytest.mark.parametrize("max_new", [16, 7])
def test_traced_rounds_equal_real_rounds_for_every_family_and_gamma(deep, family, max_new):
    real, traced = family
    ps = prompts(3, seed=41)
    eos = {tiny.EOS_ID}
    traces = trace_batch(deep, [p.tolist() for p in ps], max_new, GREEDY, eos, traced, lookahead=max(GAMMAS))
    checked = 0
    for p, tr in zip(ps, traces):
        assert tr.tokens == baseline_decode(deep, p, max_new, GREEDY, eos).tokens
        for key, make in real.items():
            for gamma in GAMMAS:
                gen = speculative_decode(deep, make(), p, gamma, max_new, GREEDY, eos)
                rs = scan.rounds(tr, tr.drafters.get(key) or make(), gamma, max_new, eos)
                assert traced_rounds(rs) == real_rounds(gen), (key, gamma)
                for r, t in zip(gen.rounds, rs):  # the tested drafts and their β are the real ones
                    assert t["draft_tokens"] == r.draft_tokens[: len(t["draft_tokens"])]
                    assert len(t["draft_tokens"]) == min(r.accepted + 1, r.drafted)
                    if r.beta is not None and t["beta"] is not None:
                        assert t["beta"] == pytest.approx(r.beta[: len(t["beta"])], abs=1e-4)
                checked += len(rs)
    assert checked > 60


def test_eos_inside_a_round_cuts_it_but_counts_matches_past_it(deep, family):
    """Treat a token the target emits mid-generation as EOS: rounds that draft across it accept past
    it and emit up to it, exactly as the real loop records."""
    real, traced = family
    cases = 0
    for p in prompts(4, seed=43):
        base = baseline_decode(deep, p, 24, GREEDY, set())
        eos = {base.tokens[9]}
        if base.tokens.index(base.tokens[9]) < 2:
            continue
        tr = trace_batch(deep, [p.tolist()], 24, GREEDY, eos, traced, lookahead=max(GAMMAS))[0]
        assert tr.tokens[-1] in eos and len(tr.tokens) <= 10 and len(tr.extended) > len(tr.tokens)
        for key, make in real.items():
            for gamma in (1, 3, 8):
                gen = speculative_decode(deep, make(), p, gamma, 24, GREEDY, eos)
                traced_as = tr.drafters.get(key) or make()  # a replayable drafter is run along the trace
                assert traced_rounds(scan.rounds(tr, traced_as, gamma, 24, eos)) == real_rounds(gen), (key, gamma)
                assert gen.tokens == tr.tokens
        cases += 1
    assert cases >= 2


def test_batched_generation_equals_one_prompt_at_a_time(deep, family):
    _, traced = family
    ps = [p.tolist() for p in prompts(6, seed=41)]
    eos = {tiny.EOS_ID}
    together = trace_batch(deep, ps, 16, GREEDY, eos, traced, lookahead=4)
    for p, t in zip(ps, together):
        alone = trace_batch(deep, [p], 16, GREEDY, eos, traced, lookahead=4)[0]
        assert t.extended == alone.extended and t.tokens == alone.tokens
        for key in alone.drafters:
            assert t.drafters[key].top == alone.drafters[key].top


def test_sampled_beta_from_traces_matches_the_real_sampled_acceptance(target):
    """Leviathan §3: SD's output is distributed as the target's, so β_t = Σ min(p_t, q_t) averaged over the
    target's own samples estimates the acceptance rate. With γ = 1 every round tests one drafted token;
    the real sampled decoder's acceptance must match within 4 standard errors of the difference."""
    draft = tiny.noisy_copy(target, noise=0.15, seed=9)
    sampling = SamplingConfig(temperature=1.0)
    V = target.config.vocab_size
    ps = prompts(6, seed=41)
    betas, accepted, tested = [], 0, 0
    for seed in range(4):
        gens = [torch.Generator().manual_seed(100 * seed + i) for i in range(len(ps))]
        traces = trace_batch(target, [p.tolist() for p in ps], 24, sampling, set(),
                             [TraceDrafter("draft", MODEL, model=draft)], generators=gens)
        betas += [b for tr in traces for b in tr.drafters["draft"].beta[1: len(tr.tokens)]]
        for i, p in enumerate(ps):
            g = torch.Generator().manual_seed(7_000 + 100 * seed + i)
            gen = speculative_decode(target, DraftModelDrafter(draft, sampling, g, V), p, 1, 24, sampling, set(), g)
            accepted += sum(r.accepted for r in gen.rounds)
            tested += sum(r.drafted for r in gen.rounds)
    beta = sum(betas) / len(betas)
    rate = accepted / tested
    se = ((rate * (1 - rate) / tested) + torch.tensor(betas).var().item() / len(betas)) ** 0.5
    assert 0.1 < rate < 0.95  # a draft that neither always nor never agrees, or the test says nothing
    assert abs(beta - rate) < 4 * se, (beta, rate, se)


def test_cli_traced_run_checks_itself_against_the_real_subset_and_is_read_unchanged(tiny_model_dirs, tmp_path,
                                                                                    monkeypatch):
    """`run --mode traced` on the tiny pair: every prompt has every method × γ (traced, flagged), the real
    subset agrees round for round, the file validates, the store round-trips it, and analysis reads it."""
    import json
    from pathlib import Path

    from specdec import results as R
    from specdec.analysis import summary
    from specdec.cli import main
    from specdec.store import Store

    monkeypatch.setenv("SPECDEC_STORE", str(tmp_path / "runs.sqlite"))
    target_dir, draft_dir = tiny_model_dirs
    workload = Path(__file__).parent / "fixtures" / "tiny_workload.jsonl"
    out = tmp_path / "out"
    assert main(["run", "--workload", str(workload), "--out", str(out), "--target", str(target_dir),
                 "--draft", str(draft_dir), "--methods", "draft,prompt-lookup,layer-skip", "--layer-skip-layers", "1",
                 "--draft-lengths", "1,2,3,4", "--max-new-tokens", "10", "--max-prompts", "6", "--real-prompts", "2",
                 "--dtype", "float32"]) == 0
    res = R.load(out / "results.json")
    assert res["schema_version"] == 2 and res["manifest"]["settings"]["mode"] == "traced"
    rep = res["manifest"]["traced"]
    assert len(rep["real_prompts"]) == 2 and rep["check"]["configs"] == 6
    assert rep["check"]["agreement"] == 1.0 and rep["check"]["configs_equal"] == 6 and not rep["check"]["mismatches"]
    assert rep["check"]["baseline_equal"] == 2
    # verify lengths the real subset's rounds left thin were probed, and the cost model priced them from it
    real_rounds_ = [r["drafted"] for p in res["prompts"] if p["id"] in rep["real_prompts"]
                    for run in p["runs"] if not run.get("traced") for r in run["rounds"]]
    thin = [k for k in range(1, 5) if real_rounds_.count(k) < 5]
    assert thin and rep["cost_model"]["verify_probed"] == thin
    assert sorted(set(rep["probe"]["drafted"])) == [0] + thin
    # The machine is watched while timings are taken — the real subset — not while traced rounds are priced:
    # the reference step is timed at the start, after each real prompt and at the end of the subset (4 of 6).
    assert len(res["manifest"]["machine"]["reference_s"]) == 1 + 2 + 1
    for p in res["prompts"]:
        configs = {(r["method"], r["draft_length"]) for r in p["runs"]}
        assert configs == {(m, g) for m in ("draft", "prompt-lookup", "layer-skip:L1") for g in (1, 2, 3, 4)}
        real = p["id"] in rep["real_prompts"]
        assert bool(p["baseline"].get("traced")) is not real
        assert sum(not r.get("traced") for r in p["runs"]) == (3 if real else 0)
        assert set(p["trace"]) == {"draft", "prompt-lookup", "layer-skip:L1"}
        assert all(r["tokens"] == p["baseline"]["tokens"] for r in p["runs"] if r.get("traced"))
    from specdec.present import views
    shown = views.outputs_table(res, "draft", 1)  # the per-prompt view tells traced and real prompts apart
    assert sorted(shown["measured"]) == ["real"] + ["traced"] * 5
    table = summary.summary_table(summary.collect(res))
    assert set(table["draft_length"]) == {0, 1, 2, 3, 4} and table["speedup"].notna().all()
    with Store() as store:
        again = store.load_run(res["manifest"]["run_id"])
    assert json.loads(json.dumps(again["prompts"])) == json.loads(json.dumps(res["prompts"]))
    import io

    from pypdf import PdfReader

    from specdec.present import report
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(report.build_brief(res, charts_on=False))).pages)
    assert "Traced measurement" in " ".join(text.split()) and f"{rep['check']['rounds']} of {rep['check']['rounds']} rounds" \
        in " ".join(text.split())
    assert f"verify passes of the {len(thin)} length" in " ".join(text.split())
    # sampling cannot be traced: one line, exit 2
    assert main(["run", "--workload", str(workload), "--out", str(tmp_path / "x"), "--target", str(target_dir),
                 "--draft", str(draft_dir), "--mode", "traced", "--temperature", "0.7"]) == 2


def test_a_forced_response_is_scored_by_one_teacher_forced_pass(deep, family):
    """Forcing the target's own output gives the generated trace back; forcing another response scores
    the drafters along it (its tokens, each drafter's choices given its prefixes)."""
    _, traced = family
    ps = [p.tolist() for p in prompts(3, seed=41)]
    eos = {tiny.EOS_ID}
    free = trace_batch(deep, ps, 12, GREEDY, eos, traced, lookahead=4)
    again = trace_batch(deep, ps, 12, GREEDY, eos, traced, lookahead=4, forced=[t.extended for t in free])
    for a, b in zip(free, again):
        assert a.extended == b.extended and all(a.drafters[k].top == b.drafters[k].top for k in a.drafters)
    other = [list(range(65, 75)), None, [tiny.EOS_ID]]
    scored = trace_batch(deep, ps, 12, GREEDY, eos, traced, lookahead=4, forced=other)
    # without an EOS of its own a forced row goes on with the target's choices, up to max_new_tokens
    assert scored[0].tokens[:10] == other[0] and len(scored[0].tokens) == 12
    assert scored[1].tokens == free[1].tokens and scored[2].tokens == [tiny.EOS_ID]
    draft = traced[0].model
    with torch.inference_mode():  # the draft's choice at each position of the forced response, by hand
        logits = draft(input_ids=torch.tensor([ps[0] + other[0]])).logits[0, len(ps[0]) - 1:-1]
    assert scored[0].drafters["draft"].top[: len(other[0])] == logits.argmax(-1).tolist()


def test_cli_scores_logged_responses(tiny_model_dirs, tmp_path, monkeypatch):
    import json

    from specdec import results as R
    from specdec.cli import main

    monkeypatch.setenv("SPECDEC_STORE", str(tmp_path / "runs.sqlite"))
    rows = [{"id": f"p{i}", "category": "c", "prompt": f"Say something about {w}.", "response": f"{w} is {w}, {w}."}
            for i, w in enumerate(("cats", "dogs", "rain", "tea"))]
    rows.append({"id": "chat", "category": "c", "messages": [{"role": "user", "content": "hi"},
                                                             {"role": "assistant", "content": "hello there"}]})
    wl = tmp_path / "logged.jsonl"
    wl.write_text("\n".join(json.dumps(r) for r in rows))
    target_dir, draft_dir = tiny_model_dirs
    assert main(["run", "--workload", str(wl), "--out", str(tmp_path / "o"), "--target", str(target_dir),
                 "--draft", str(draft_dir), "--methods", "draft,prompt-lookup", "--draft-lengths", "1,3",
                 "--max-new-tokens", "40", "--real-prompts", "1", "--responses", "--dtype", "float32", "--no-store"]) == 0
    res = R.load(tmp_path / "o" / "results.json")
    assert res["manifest"]["traced"]["responses"] == 4  # every prompt but the one run for real
    logged = {p["id"]: p for p in res["prompts"] if p["baseline"].get("logged_response")}
    assert len(logged) == 4
    want = {r["id"]: r.get("response") or "hello there" for r in rows}
    for pid, p in logged.items():
        assert p["baseline"]["text"] == want[pid]  # the logged answer, byte for byte (byte tokenizer)
        assert all(r["tokens"] == p["baseline"]["tokens"] and r.get("traced") for r in p["runs"])


def test_stacked_caches_write_in_place_and_keep_each_rows_positions(deep):
    """Rows prefilled alone, stacked left-padded: each row's keys sit at the right end, pads are zeros, and
    a decode step writes its own position into the same buffer (no copy of the whole cache per step)."""
    from specdec.decoding.forward import new_cache
    from specdec.traces.generate import stack_caches
    rows, widths = [], [3, 7]
    for n in widths:
        c = new_cache(deep)
        with torch.inference_mode():
            deep(input_ids=torch.arange(1, n + 1)[None], past_key_values=c, use_cache=True)
        rows.append(c)
    stacked = stack_caches(deep, rows, widths, room=7 + 2)
    layer = stacked.layers[0]
    assert layer.keys.shape[0] == 2 and layer.keys.shape[2] == 7 and stacked.get_seq_length() == 7
    assert torch.equal(layer.keys[0, :, 4:], rows[0].layers[0].keys[0]) and not layer.keys[0, :, :4].any()
    assert torch.equal(layer.keys[1], rows[1].layers[0].keys[0])
    buffer = layer.keys.data_ptr()
    for step in range(3):  # one more than planned: the buffer grows once, then writes in place again
        new = torch.full_like(layer.keys[:, :, :1], float(step + 1))
        k, _ = layer.update(new, new)
        assert k.shape[2] == 8 + step and torch.equal(k[:, :, -1:], new)
        if step == 0:
            assert k.data_ptr() == buffer


def test_the_verify_probe_times_each_thin_length_and_a_one_token_reference(deep):
    """probe.thin names the lengths with too few real rounds; probe.probe times each (and drafted 0) at least
    `passes` times, spread over the prompts, leaving each prompt's cache as it found it."""
    from specdec.traces import probe
    assert probe.thin({0: 50, 1: 10, 2: 3, 4: 5}, 4, 5) == [2, 3]
    rows = probe.probe(deep, [list(range(3, 12)), list(range(20, 26))], [2, 5], passes=3)
    counts = {k: rows["drafted"].count(k) for k in set(rows["drafted"])}
    assert counts == {0: 4, 2: 4, 5: 4}  # ⌈3 / 2⌉ sweeps on each of the 2 prompts
    assert len(rows["verify_s"]) == 12 and all(t > 0 for t in rows["verify_s"])
    assert probe.probe(deep, [list(range(3, 12))], [], passes=3) == {"drafted": [], "verify_s": []}


def test_trace_batches_are_even_and_within_the_cache_budget():
    from specdec.traces.run import batches
    sizes = lambda lengths, most, budget=None: [len(r) for r in batches(lengths, most, budget)]
    assert sizes([10] * 50, 32) == [25, 25] and sizes([10] * 7, 8) == [7] and sizes([10] * 17, 8) == [5, 6, 6]
    lengths = [10] * 20 + [1000] * 6
    got = batches(lengths, 32, budget=2000)
    assert [i for r in got for i in r] == list(range(26))  # every prompt once, in order
    assert all(len(r) * max(lengths[i] for i in r) <= 2000 or len(r) == 1 for r in got)
    assert sizes(lengths, 32, budget=2000) == [13, 6, 1, 2, 2, 2] and batches([], 8) == []


def test_a_method_whose_drafting_costs_more_than_it_can_save_runs_later_subset_prompts_at_a_short_gamma():
    """The real subset's budget: a method whose drafting cost more than REAL_SLOW_FACTOR target steps per
    accepted token on earlier subset prompts is capped at REAL_SLOW_GAMMA on the later ones; the others keep
    the rotation. Target step here: 6.3 s / 63 steps = 0.1 s."""
    from specdec import config
    from specdec.measure.bench import DraftSource
    from specdec.traces.run import slow_methods, subset_gammas

    def run(method, accepted, draft_s, traced=False):
        return {"method": method, "draft_length": 1, "traced": traced,
                "rounds": [{"accepted": accepted, "draft_s": draft_s}]}
    budget = config.REAL_SLOW_FACTOR * 0.1
    record = {"baseline": {"decode_s": 6.3, "new_tokens": 64}, "runs": [
        run("draft", 27, 27 * budget * 0.9),  # pays for itself
        run("layer-skip:L14", 1, 9.0),  # 9 s of drafting for one accepted token
        run("prompt-lookup", 0, 0.0),  # free drafts, even when none is accepted
        run("medusa", 0, 5.0, traced=True)]}  # priced, not timed: not judged here
    assert slow_methods([record]) == {"layer-skip:L14"}
    record["runs"][0]["rounds"][0]["draft_s"] = 27 * budget * 1.1
    assert slow_methods([record]) == {"draft", "layer-skip:L14"}
    assert slow_methods([]) == set()
    sources = [DraftSource("draft"), DraftSource("layer-skip:L14"), DraftSource("medusa", train_prompts=frozenset({"p"}),
                                                                                 typical=(0.1, 0.3))]
    assert subset_gammas(sources, "q", 8, {"layer-skip:L14"}) == {"draft": (8,), "layer-skip:L14": (config.REAL_SLOW_GAMMA,),
                                                                  "medusa": (8,)}
    assert subset_gammas(sources, "p", 1, {"layer-skip:L14"}) == {"draft": (1,), "layer-skip:L14": (1,)}


def test_cli_traced_run_caps_a_slow_methods_subset_gamma_and_still_checks_it(tiny_model_dirs, tmp_path, monkeypatch):
    """End to end on the tiny pair with every method counted slow (any drafting time at all): the second subset
    prompt runs γ 2, not the rotation's 4, and its rounds still equal the traced ones."""
    from pathlib import Path

    from specdec import config, results as R
    from specdec.cli import main

    monkeypatch.setattr(config, "REAL_SLOW_FACTOR", 0.0)
    target_dir, draft_dir = tiny_model_dirs
    workload = Path(__file__).parent / "fixtures" / "tiny_workload.jsonl"
    assert main(["run", "--workload", str(workload), "--out", str(tmp_path / "o"), "--target", str(target_dir),
                 "--draft", str(draft_dir), "--methods", "draft,prompt-lookup", "--draft-lengths", "1,2,3,4",
                 "--max-new-tokens", "10", "--max-prompts", "3", "--real-prompts", "2", "--dtype", "float32",
                 "--no-store"]) == 0
    rep = R.load(tmp_path / "o" / "results.json")["manifest"]["traced"]
    assert sorted(tuple(v) for v in rep["check_gammas"].values()) == [(1,), (2,)]
    assert rep["check"]["configs"] == 4 and rep["check"]["configs_equal"] == 4


def test_short_prompts_are_prefilled_together_long_ones_alone():
    from specdec.traces.generate import prefill_groups
    assert prefill_groups([40] * 8) == [list(range(8))]  # 320 positions, no pads: one forward
    widths = [800, 43, 130, 38, 47, 41]
    assert prefill_groups(widths) == [[3, 5, 1, 4], [2], [0]]  # by width; 5 × 130 > 512; 800 alone
    assert prefill_groups([10, 30]) == [[0], [1]]  # 2 × 30 positions for 40 tokens: too many pads
    assert sorted(i for g in prefill_groups(widths) for i in g) == list(range(len(widths)))
