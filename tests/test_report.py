"""PDF brief: built from the recorded tiny-model run, checked with pypdf, poppler and a real Chromium where present."""

import io
import json
import re
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pypdf import PdfReader

import synthetic
from specdec import cli, results
from specdec.analysis import summary as analysis
from specdec.analysis import decision
from specdec.present import brief_deploy, brief_sections, report
from specdec.present.chart_images import ChartRenderer, ChartsUnavailable, find_browser

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_run" / "results.json"
NOW = datetime(2026, 3, 14, 9, 30, tzinfo=timezone.utc)
needs_browser = pytest.mark.skipif(find_browser() is None, reason="no Chrome/Chromium: chart images are skipped")


@pytest.fixture(scope="module")
def run():
    return results.load(FIXTURE)


@pytest.fixture(scope="module")
def a(run):
    return analysis.analyze(run, n_boot=300)


@pytest.fixture(scope="module")
def brief(a):
    """The fixture's brief with chart images (one browser for the module)."""
    if find_browser() is None:
        pytest.skip("no Chrome/Chromium: chart images are skipped")
    with ChartRenderer() as r:
        return report.build_brief(a, renderer=r, now=NOW)


@pytest.fixture(scope="module")
def plain(a):
    """The same brief without chart images: no browser needed."""
    return report.build_brief(a, charts_on=False, now=NOW)


def _text(pdf: bytes) -> list[str]:
    """Each page's text, whitespace runs collapsed (pypdf spaces words out unevenly)."""
    return [re.sub(r"\s+", " ", p.extract_text()) for p in PdfReader(io.BytesIO(pdf)).pages]


def _images(pdf: bytes) -> int:
    return sum(len(p.images) for p in PdfReader(io.BytesIO(pdf)).pages)


def _inked_images(pdf: bytes) -> int:
    """Images with a chart drawn on them: dark pixels (axes, labels, marks) on ≥ 0.5 % of the area and
    more than a few distinct grey levels. A blank or single-colour placeholder image counts 0."""
    n = 0
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for image in page.images:
            grey = image.image.convert("L")
            hist = grey.histogram()
            dark = sum(hist[:128]) / max(1, grey.size[0] * grey.size[1])
            n += dark >= 0.005 and sum(1 for h in hist if h) > 8
    return n


def test_plain_brief_has_every_section_and_the_verdict(plain, a):
    pages = _text(plain)
    assert plain[:5] == b"%PDF-"
    assert 3 <= len(pages) <= 10
    assert "INSUFFICIENT EVIDENCE: measure more prompts before deciding" in pages[0]
    assert "14 March 2026" in pages[0]
    whole = "\n".join(pages)
    for section in ("Summary", "Results by segment", "Why", "Charts", "Deployment what-if", "Losslessness",
                    "Methodology", "Caveats", "Run manifest"):
        assert section in whole, section
    assert "Charts left out on request" in whole
    assert _images(plain) == 0
    # Page numbers "page x of n" on every page.
    for i, text in enumerate(pages, start=1):
        assert f"page {i} of {len(pages)}" in text


def test_key_numbers_match_the_analysis(plain, a):
    whole = " ".join(_text(plain))
    o = decision.decide(a).evidence["overall"]
    assert f"{o['speedup']:.2f}×" in whole and f"{o['speedup_lo']:.3f}–{o['speedup_hi']:.3f}×" in whole
    assert "12 prompts in 3 categories" in whole
    for cat in ("chat", "code", "extraction"):
        assert cat in whole
    assert "72 of 72 speculative runs reproduced" in whole  # losslessness: float32 greedy, all identical
    assert a.manifest["run_id"] in whole and a.manifest["settings"]["workload_sha256"] in whole.replace(" ", "")
    assert "τ = (1 − α^(γ+1)) ÷ (1 − α)" in whole  # the formulas, in the right glyphs


def test_summary_has_three_to_five_sentences(a):
    d = decision.decide(a)
    sentences = brief_sections.summary(a, d, decision.Thresholds(), "H100-SXM", "prompt-lookup",
                                       brief_deploy.whatif_all(a, "prompt-lookup", "H100-SXM", (1, 8, 64)))
    assert 3 <= len(sentences) <= 5
    assert all(re.search(r"\d", s) for s in sentences[:2])


def test_every_font_is_the_embedded_dejavu(plain):
    """No fallback to the built-in PDF fonts, which lack ≥ × γ α τ."""
    fonts = set()
    for page in PdfReader(io.BytesIO(plain)).pages:
        for f in page["/Resources"]["/Font"].values():
            f = f.get_object()
            fonts.add(str(f["/BaseFont"]))
            assert "/DescendantFonts" in f  # a CID font embedded from the TTF, not a core font
    assert fonts and all("DejaVu" in f for f in fonts), fonts
    whole = " ".join(_text(plain))
    for ch in "≥×γατ":
        assert ch in whole, ch


def test_characters_the_font_lacks_are_replaced_not_dropped(run):
    odd = json.loads(json.dumps(run))
    for p in odd["prompts"]:
        if p["category"] == "chat":
            p["category"] = "chat 🚀 聊天\x07"
    pdf = report.build_brief(odd, charts_on=False, now=NOW)
    whole = " ".join(_text(pdf))
    assert "chat ? ??" in whole and "🚀" not in whole and "\x07" not in whole


def _words_outside_margins(pdf_path: Path) -> tuple[int, list[str]]:
    """(words seen, words whose bounding box leaves the printable area) from pdftotext -bbox, in points."""
    html = subprocess.run(["pdftotext", "-bbox", str(pdf_path), "-"], capture_output=True, text=True,
                          check=True).stdout
    width = float(re.search(r'<page width="([\d.]+)"', html).group(1))
    bad, n = [], 0
    for m in re.finditer(r'<word xMin="([\d.]+)" yMin="[\d.]+" xMax="([\d.]+)" yMax="[\d.]+">([^<]*)</word>', html):
        n += 1
        x0, x1 = float(m.group(1)), float(m.group(2))
        if x0 < 16 * 72 / 25.4 - 2 or x1 > width - 16 * 72 / 25.4 + 2:  # 16 mm margins
            bad.append(m.group(3))
    return n, bad


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")
def test_no_text_leaves_the_margins(plain, tmp_path):
    path = tmp_path / "brief.pdf"
    path.write_bytes(plain)
    n, bad = _words_outside_margins(path)
    assert n > 500 and bad == []


@needs_browser
def test_brief_with_charts_embeds_at_least_five_images(brief, plain):
    assert _images(brief) >= 5 and _inked_images(brief) >= 5
    assert len(_text(brief)) >= len(_text(plain))
    assert "Charts left out" not in " ".join(_text(brief))


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils not installed")
@needs_browser
def test_pdftoppm_renders_page_one(brief, tmp_path):
    path = tmp_path / "brief.pdf"
    path.write_bytes(brief)
    subprocess.run(["pdftoppm", "-r", "40", "-png", "-f", "1", "-l", "2", str(path), str(tmp_path / "p")],
                   check=True, capture_output=True, timeout=60)
    from PIL import Image

    pngs = sorted(tmp_path.glob("p-*.png"))
    assert len(pngs) == 2
    for png in pngs:
        with Image.open(png) as im:
            lo, hi = im.convert("L").getextrema()
            assert im.size[0] > 250 and lo < 100 < hi  # ink on paper, not a blank page


def test_no_browser_gives_a_brief_with_a_note_and_one_warning(a, monkeypatch, tmp_path):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chrome"))
    heard = []
    pdf = report.build_brief(a, now=NOW, on_warning=heard.append)
    assert len(heard) == 1 and "BROWSER_PATH" in heard[0] and "\n" not in heard[0]
    whole = " ".join(_text(pdf))
    assert "Charts left out" in whole and _images(pdf) == 0
    with pytest.raises(ChartsUnavailable, match="apt-get install chromium"):
        ChartRenderer()


def test_go_brief_shows_the_configuration_to_apply():
    spec = synthetic.Spec([synthetic.Category("code", 25, (0.85,), spread=0.05), synthetic.Category("chat", 25, (0.8,), spread=0.05)],
                  temperature=0.0, seed=11)
    a = analysis.analyze(synthetic.make_results(spec), n_boot=300)
    d = decision.decide(a, hardware="L4")
    assert d.verdict == "GO"
    pdf = report.build_brief(a, decision=d, charts_on=False, now=NOW)
    pages = _text(pdf)
    assert pages[0].startswith("Speculative decoding: go / no-go brief")
    whole = " ".join(pages)
    assert d.headline in whole
    assert f"Configuration to apply: {a.label('draft')}, γ =" in whole and "vllm serve" in whole and "llama-server" in whole
    assert "projected onto L4" in whole and "On L4, batch by batch" in whole


# ---- CLI ----

def test_cli_brief_from_results_file(tmp_path, capsys):
    out = tmp_path / "brief.pdf"
    assert cli.main(["brief", "--results", str(FIXTURE), "--out", str(out), "--no-charts", "--hardware", "L4",
                     "--batch-sizes", "1,8,64", "--min-speedup", "1.1", "--page", "Letter"]) == 0
    reader = PdfReader(out)
    assert abs(float(reader.pages[0].mediabox.width) - 612) < 1  # Letter
    whole = re.sub(r"\s+", " ", " ".join(p.extract_text() for p in reader.pages))
    assert "batch 64" in whole and "batch 256" not in whole and "clears 1.10×" in whole
    assert "wrote" in capsys.readouterr().out


def test_cli_brief_from_the_run_store(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPECDEC_STORE", str(tmp_path / "runs.sqlite"))
    from specdec.store import Store
    with Store() as store:
        run_id = store.import_json(FIXTURE)
    out = tmp_path / "b.pdf"
    assert cli.main(["brief", "--run-id", run_id, "--out", str(out), "--no-charts"]) == 0
    assert run_id in " ".join(p.extract_text() for p in PdfReader(out).pages)


@pytest.mark.parametrize("argv, message", [
    (["--results", "missing.json"], "missing.json"),
    (["--results", str(FIXTURE), "--hardware", "TPU-9"], "unknown hardware"),
    (["--results", str(FIXTURE), "--batch-sizes", "0,4"], "--batch-sizes"),
])
def test_cli_brief_errors_are_one_line(argv, message, tmp_path, capsys):
    assert cli.main(["brief", *argv, "--out", str(tmp_path / "b.pdf"), "--no-charts"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "b.pdf").exists()


@pytest.mark.parametrize("browser", ["missing", "/bin/false"])
def test_cli_without_a_working_browser_says_so_in_one_line(browser, tmp_path, monkeypatch, capsys):
    if browser == "/bin/false" and not Path(browser).exists():
        pytest.skip("no /bin/false")
    monkeypatch.setenv("BROWSER_PATH", browser if browser.startswith("/") else str(tmp_path / browser))
    out = tmp_path / "b.pdf"
    assert cli.main(["brief", "--results", str(FIXTURE), "--out", str(out)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("note:") and "no chart images" in err[0]
    assert out.exists()


def test_manifest_names_the_matmul_backend_the_models_ran_on(run):
    """The absolute milliseconds depend on the CPU matmul path the models were timed with."""
    import copy
    marked = copy.deepcopy(run)
    marked["manifest"]["models"]["target"]["linear"] = "onednn"
    whole = " ".join(_text(report.build_brief(analysis.analyze(marked, n_boot=50), charts_on=False, now=NOW)))
    assert "(matmul: onednn)" in whole
