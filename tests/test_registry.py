"""The method registry: every family's rules in its entry, read through specdec.methods, and old results still load."""

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from specdec import methods, results as R
from specdec.analysis import costs, decision, projection
from specdec.analysis.summary import analyze
from specdec.errors import SpecdecError
from specdec.methods.family import Family, Key

ROOT = Path(__file__).resolve().parents[1]
OLD_RESULTS = [ROOT / "tests/fixtures/tiny_run/results.json", ROOT / "sample_workloads/example_run/results.json"]


def test_every_family_parses_labels_and_orders_its_keys_in_its_entry():
    drafters = {"draft:a": {"name": "a"}, "medusa": {"heads": 3}}
    cases = {  # key → (family, variant, label, short label)
        "draft": ("draft", None, "draft model", "draft model"),
        "draft:a": ("draft", "a", "draft model (a)", "a"),
        "prompt-lookup": ("prompt-lookup", None, "prompt lookup", "prompt lookup"),
        "layer-skip:L8": ("layer-skip", "L8", "layer-skip (first 8 layers)", "layer-skip L8"),
        "medusa": ("medusa", None, "Medusa heads (3)", "Medusa"),
        "medusa:train": ("medusa", "train", "Medusa heads (3), training prompts", "Medusa"),
        "medusa:typical": ("medusa", "typical", "Medusa heads (3), typical acceptance (lossy)", "Medusa"),
    }
    for key, (fam, var, label, short) in cases.items():
        k = methods.parse(key)
        assert isinstance(k, Key) and (k.text, k.family, k.variant) == (key, fam, var)
        assert methods.parse(k) is k  # parsed once: a Key passes through
        assert methods.spec(key) is methods.REGISTRY[fam] and isinstance(methods.spec(fam), Family)
        assert methods.label(key, drafters) == label and methods.short_label(key, drafters) == short
    assert methods.parse("layer-skip:L8").layers == 8
    assert methods.order(["medusa", "layer-skip:L12", "x", "layer-skip:L4", "prompt-lookup", "draft:b", "draft:a"]) == \
        ["draft:a", "draft:b", "prompt-lookup", "layer-skip:L4", "layer-skip:L12", "medusa", "x"]
    for bad in ("layer-skip", "layer-skip:8", "prompt-lookup:x", "eagle", "medusa:x", "draft:", 3, None):
        with pytest.raises(SpecdecError):
            methods.parse(bad)


def test_the_medusa_cap_is_one_rule_read_everywhere():
    d = {"medusa": {"heads": 3}}
    assert [methods.effective_gamma(k, 6, d) for k in ("medusa", "medusa:train", "draft", "prompt-lookup")] == [3, 3, 6, 6]
    assert methods.max_gamma("medusa") is None  # K unknown: not capped
    assert projection.gamma_grid(8, cap=methods.max_gamma("medusa:typical", d)) == [1, 2, 3]


def test_run_settings_are_checked_and_cleared_by_each_family():
    from specdec.measure import runplan
    base = dict(target="t", draft="d", draft_lengths=[2], max_new_tokens=8)
    cfg = runplan.run_config(**base, methods=["prompt-lookup"], layer_skip_layers=[4], medusa_heads="h")
    assert (cfg.drafts, cfg.layer_skip_layers, cfg.medusa_heads) == ((), (), None)  # families not measured
    with pytest.raises(SpecdecError, match="choose at least one method from draft, prompt-lookup"):
        runplan.run_config(**base, methods=["eagle"])
    with pytest.raises(SpecdecError, match="needs a draft model"):
        runplan.run_config(**{**base, "draft": ""}, methods=["draft"])
    with pytest.raises(SpecdecError, match="needs trained heads"):
        runplan.run_config(**base, methods=["medusa"])
    with pytest.raises(SpecdecError, match="typical acceptance is a Medusa option"):
        runplan.run_config(**base, methods=["draft"], medusa_typical=True)
    assert methods.options(["draft", "medusa"]) == {"drafts", "medusa_heads", "medusa_typical"}


def test_no_gamma_beyond_the_largest_run_is_one_function():
    runs = pd.DataFrame({"method": ["draft", "draft", "prompt-lookup"], "draft_length": [2, 6, 4]})
    assert projection.largest_gamma_run(runs, "draft") == 6 and projection.largest_gamma_run(runs, "prompt-lookup") == 4
    callers = ["specdec/analysis/decision.py", "specdec/analysis/deploy.py", "pages/explore.py"]
    for path in callers:
        text = (ROOT / path).read_text()
        assert "largest_gamma_run(" in text and '"draft_length"].max()' not in text, path


@pytest.mark.parametrize("path", OLD_RESULTS, ids=lambda p: p.parent.name)
def test_results_written_before_the_registry_still_load_and_decide(path):
    r = R.load(path)
    a = analyze(r, n_boot=50)
    info = costs.drafters(r["manifest"], a.methods)
    assert set(a.methods) <= set(info) and all(methods.is_valid(k) for k in info)
    for key in a.methods:
        assert info[key]["family"] == methods.family(key)
        assert methods.label(key, info)
    d = decision.decide(a)
    assert d.verdict in ("GO", "GO-SEGMENTS", "NO-GO", "INSUFFICIENT-EVIDENCE")


def test_no_family_name_is_compared_outside_the_registry():
    """The registry's point: code outside specdec/methods/ reads a family's rules from its entry, never
    by comparing its name (the grep of issue 16)."""
    names = "|".join(re.escape(f) for f in methods.FAMILIES)
    q, fam = "[\"']", f"({names})(:[a-z]+)?"
    pattern = (f"[=!]= *\\(? *{q}{fam}{q}|{q}{fam}{q} *(==|!=|in\\b|not in\\b)|\\bin *[(\\[{{] *{q}{fam}{q}"
               f"|startswith\\(\\(? *{q}{fam}")
    out = subprocess.run(["grep", "-rnE", "--include=*.py", pattern, "specdec", "pages", "app.py"], cwd=ROOT,
                         capture_output=True, text=True).stdout.splitlines()
    outside = [line for line in out if not line.startswith("specdec/methods/")]
    assert outside == [], "\n".join(outside)
    assert sys.modules["specdec.methods"].__file__.endswith("methods/__init__.py")
