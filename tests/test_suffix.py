"""Suffix decoding: the tries and the proposal by hand, lossless on tiny models, learning from earlier responses,
traced rounds equal to real ones, and its registry entry."""

import json
from pathlib import Path

import pytest
import torch

import tiny
from specdec import methods, results as R
from specdec.config import SamplingConfig
from specdec.decoding.loops import baseline_decode, speculative_decode
from specdec.decoding.suffix import SuffixDrafter, SuffixTrie
from specdec.traces import scan
from specdec.traces.generate import trace_batch
from test_decoding import prompts

GREEDY = SamplingConfig()
GAMMAS = range(1, 9)


def ids(*xs):
    return torch.tensor(xs)


def test_trie_counts_every_substring_up_to_its_depth():
    t = SuffixTrie(depth=3)
    t.add([1, 2, 1, 2])
    assert t.root.children[1].count == 2 and t.root.children[1].children[2].count == 2
    assert t.root.children[1].children[2].children[1].count == 1  # "1 2 1"
    assert not t.root.children[1].children[2].children[1].children  # depth 3: nothing longer
    t.add([2, 1])  # a second text: no substring spans the two
    assert t.root.children[2].children[1].count == 2 and 2 not in t.root.children[2].children


def test_proposal_follows_the_longest_match_and_grows_with_it():
    d = SuffixDrafter()
    d.start(ids(1, 2, 3, 1))
    # "1 2 3 1 2": the match "1 2" (m = 2) drafts at most 2 tokens: 3, then 1 (P = ½ each: the current
    # occurrence of "1 2" has no continuation yet).
    assert d.propose(ids(1, 2, 3, 1, 2), 8).x.tolist() == [3, 1]
    assert d.propose(ids(1, 2, 3, 1, 2), 1).x.tolist() == [3]  # cut at γ
    assert d.propose(ids(1, 2, 3, 1, 2, 9), 8).x.tolist() == []  # "9" never seen: nothing to draft
    earlier = SuffixDrafter()
    earlier.learn([5, 6, 7, 8, 9, 10, 11])
    earlier.start(ids(40, 41))
    assert earlier.propose(ids(40, 41, 5), 8).x.tolist() == [6]  # m = 1: one token
    assert earlier.propose(ids(40, 41, 5, 6), 8).x.tolist() == [7, 8]  # m = 2: two
    assert earlier.propose(ids(40, 41, 5, 6, 7, 8), 8).x.tolist() == [9, 10, 11]  # to the end of what it saw
    assert earlier.propose(ids(40, 41, 5, 6, 7, 8), 8).q is None  # verified with q one-hot, like lookup


def test_draft_at_gamma_is_a_prefix_of_the_draft_at_any_larger_gamma():
    g = torch.Generator().manual_seed(3)
    d = SuffixDrafter()
    d.learn(torch.randint(0, 6, (200,), generator=g).tolist())
    for _ in range(30):
        seq = torch.randint(0, 6, (int(torch.randint(3, 60, (1,), generator=g)),), generator=g)
        d.start(seq[:2])
        full = d.propose(seq, 16).x.tolist()
        assert all(d.propose(seq, k).x.tolist() == full[:k] for k in range(17))


@pytest.fixture(scope="module")
def deep():
    return tiny.tiny_qwen2(seed=7, layers=3)


def test_lossless_greedy_on_every_prompt_and_gamma(deep):
    """Identical ids to the baseline for every prompt, γ 1–8, with and without earlier responses learned."""
    eos = {tiny.EOS_ID}
    ps = prompts(4, seed=51)
    learned = SuffixDrafter()
    checked = 0
    for p in ps:
        base = baseline_decode(deep, p, 24, GREEDY, eos)
        for drafter in (SuffixDrafter(), learned):
            for gamma in GAMMAS:
                gen = speculative_decode(deep, drafter, p, gamma, 24, GREEDY, eos)
                assert gen.tokens == base.tokens, gamma
                checked += sum(r.drafted for r in gen.rounds)
        learned.learn(base.tokens)
    assert checked > 100  # it drafted: the identity was tested, not trivially true


def test_a_repeated_response_is_drafted_from_the_earlier_one(deep):
    """The second time a response comes, it is drafted from the first: every draft accepted, τ high."""
    eos = {tiny.EOS_ID}
    p = prompts(6, seed=52)[5]
    base = baseline_decode(deep, p, 40, GREEDY, eos)
    fresh = speculative_decode(deep, SuffixDrafter(), p, 8, 40, GREEDY, eos)
    d = SuffixDrafter()
    d.learn(base.tokens)
    again = speculative_decode(deep, d, p, 8, 40, GREEDY, eos)
    assert again.tokens == base.tokens
    tau = lambda g: sum(r.emitted for r in g.rounds) / len(g.rounds)  # noqa: E731
    assert all(r.accepted == r.drafted for r in again.rounds)  # drafted fully: nothing rejected
    assert tau(again) >= 4 and tau(again) > tau(fresh) + 1, (tau(again), tau(fresh))


def test_traced_rounds_equal_real_rounds_with_and_without_learned_responses(deep):
    eos = {tiny.EOS_ID}
    ps = prompts(3, seed=53)
    traces = trace_batch(deep, [p.tolist() for p in ps], 16, GREEDY, eos, [], lookahead=max(GAMMAS))
    learned = SuffixDrafter()
    for p, tr in zip(ps, traces):
        for gamma in GAMMAS:
            for drafter in (SuffixDrafter(), learned):
                gen = speculative_decode(deep, drafter, p, gamma, 16, GREEDY, eos)
                rs = scan.rounds(tr, drafter, gamma, 16, eos)  # replayed along the target's own trace
                assert [(r["drafted"], r["accepted"], r["emitted"]) for r in rs] == \
                    [(r.drafted, r.accepted, r.emitted) for r in gen.rounds], gamma
        learned.learn(tr.tokens)


def test_cli_runs_suffix_in_both_modes_learning_in_workload_order(tiny_model_dirs, tmp_path, monkeypatch):
    """`--methods suffix`: p2 and p3 repeat p0 and p1 (kept, with a duplicate warning), so their responses repeat:
    drafted from the earlier ones, every draft is accepted. Real mode decodes every prompt losslessly; traced
    mode checks its real subset round for round (with the responses it knew) and traces the rest."""
    from specdec.cli import main
    monkeypatch.setenv("SPECDEC_STORE", str(tmp_path / "runs.sqlite"))
    target, _ = tiny_model_dirs
    rows = [{"id": f"p{i}", "category": "c", "prompt": f"Repeat after me: {'xyz ' * (i % 2 + 2)} item {i % 2}."}
            for i in range(4)]
    workload = tmp_path / "w.jsonl"
    workload.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    common = ["--workload", str(workload), "--target", str(target), "--draft-lengths", "2,4", "--max-new-tokens", "16",
              "--dtype", "float32", "--methods", "suffix,prompt-lookup"]

    def tau(p, gamma=4):
        run = next(r for r in p["runs"] if (r["method"], r["draft_length"]) == ("suffix", gamma))
        return sum(r["emitted"] for r in run["rounds"]) / len(run["rounds"]), run

    for mode in ("real", "traced"):
        assert main(["run", *common, "--out", str(tmp_path / mode), "--mode", mode, "--real-prompts", "2"]) == 0
        res = R.load(tmp_path / mode / "results.json")
        assert res["manifest"]["models"]["drafters"]["suffix"]["family"] == "suffix"
        by_id = {p["id"]: p for p in res["prompts"]}
        for p in res["prompts"]:
            assert {(r["method"], r["draft_length"]) for r in p["runs"]} == {
                (m, g) for m in ("suffix", "prompt-lookup") for g in (2, 4)}
            assert all(r["tokens"] == p["baseline"]["tokens"] for r in p["runs"])
        for first, repeat in (("p0", "p2"), ("p1", "p3")):
            assert by_id[repeat]["baseline"]["tokens"] == by_id[first]["baseline"]["tokens"]
            (t_first, _), (t_repeat, run) = tau(by_id[first]), tau(by_id[repeat])
            assert all(r["accepted"] == r["drafted"] for r in run["rounds"]) and t_repeat > t_first, (mode, repeat)
    check = res["manifest"]["traced"]["check"]
    assert check["configs"] == 4 and check["configs_equal"] == 4 and check["agreement"] == 1.0, check


def test_registry_entry():
    k = methods.parse("suffix")
    assert (k.family, methods.label("suffix"), methods.uses_model("suffix")) == ("suffix", "suffix decoding", False)
    assert methods.decidable("suffix") and methods.max_gamma("suffix") is None and methods.draft_steps("suffix", 4) == 0
    with pytest.raises(Exception, match="takes no variant"):
        methods.parse("suffix:x")
    from specdec.present import snippets
    vllm = snippets.snippets("suffix", 4, "org/t")["vllm"]
    spec = json.loads(vllm.split("--speculative-config ")[1].strip("'"))
    assert spec == {"method": "suffix", "num_speculative_tokens": 4, "suffix_decoding_max_tree_depth": 24,
                    "suffix_decoding_max_spec_factor": 1.0, "suffix_decoding_min_token_prob": 0.1}
    assert Path(methods.__file__).parent.joinpath("suffix.py").exists()
