"""The PDF decision brief: build_brief(...) -> bytes. The only module that knows the PDF library (fpdf2).

Contents, in order: title and date; the verdict in one colour-coded line; an executive summary of
3–5 sentences with the key numbers; the per-segment table (category, method, γ, speedup with CI,
verdict); every method side by side (α, τ, speedup with CI and the memory it adds, at its best γ) and
the best choice per category (specdec.analysis.compare); the decision's reasons; the configuration to apply (when the verdict is a go); seven
charts (specdec.present.charts, the same figures the app shows); the deployment what-if tables; the
losslessness evidence; methodology (α, τ, ρ and speedup with formulas, how speedup was measured,
the projection's assumptions and measured error); caveats; the run manifest.

Text is set in DejaVu Sans, shipped in specdec/fonts (fpdf2's built-in fonts lack ≥ × γ α τ), and any
character the font lacks is replaced by "?" before it reaches the page, so nothing renders blank.
Chart images come from specdec.present.chart_images (kaleido + system Chromium, one browser per brief unless
a running ChartRenderer is passed in). Without a browser the brief is still built, with a note in
place of the charts, and on_warning receives the one-line reason.

Public API
    build_brief(data, *, decision=None, thresholds=None, hardware=None, batch_sizes=…, renderer=None,
                charts=True, on_warning=None, now=None, page_format=…) -> bytes
    brief_filename(manifest) -> str
"""

from __future__ import annotations

import io
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

from specdec import __version__, config, methods
from specdec.present import charts
from specdec.analysis import compare, deploy
from specdec.analysis import hardware as hw
from specdec.analysis.summary import ALL, Analysis, analyze
from specdec.present.chart_images import ChartRenderer, ChartsUnavailable
from specdec.analysis.decision import Decision, Thresholds, decide

FONT_DIR = Path(__file__).parent / "fonts"
SANS, MONO = "DejaVuSans", "DejaVuSansMono"

# Verdict banner colours (Okabe–Ito): fill, text.
VERDICT_COLOURS = {
    "GO": ("#009E73", "#FFFFFF"),
    "GO-SEGMENTS": ("#0072B2", "#FFFFFF"),
    "NO-GO": ("#D55E00", "#FFFFFF"),
    "INSUFFICIENT-EVIDENCE": ("#E69F00", "#000000"),
}
STATUS_TEXT = {"on": "on", "off": "off", "unclear": "unclear", "too-few": "too few prompts",
               "on (pooled)": "on (follows pooled)"}
CHART_CAPTIONS = {
    "methods": "Read: each method at its fastest measured γ; a CI bar that crosses the dashed 1× line cannot be told "
               "apart from no gain. Right: what it costs in memory beside the target — layer-skip reuses the target's "
               "weights, prompt lookup needs none.",
    "categories": "Read: a category is on when its whole bar lies right of the green bar line; a bar that crosses "
                  "the 1× line cannot be told apart from no gain.",
    "gamma": "Read: τ rises with γ and flattens once later drafted tokens are rarely accepted; speedup peaks where one "
             "more drafted token costs more than it returns. Dotted: beyond any γ run, acceptance extrapolated.",
    "acceptance": "Read: the first drafted token is accepted most often and each later one less; a solid line falling "
                  "faster than the dashed α^i means acceptance is not i.i.d. (Leviathan's closed form is then optimistic).",
    "distribution": "Read: the spread shows how much the gain depends on the prompt; the percentage is the share of "
                    "prompts that decoded faster than the baseline.",
    "throughput": "Read: decode tokens/s is what speculation changes; end to end includes prefill (time to the first "
                  "token), which speculation does not shorten.",
    "payoff": "Read: at large batches a GPU becomes compute-bound and verifying γ + 1 tokens costs nearly γ + 1 steps, "
              "so gains shrink and turn into losses; right of the black line speculation should be off.",
    "costs": "Read: c is the draft's cost per drafted token in target steps (Leviathan's c); Thm 3.8 assumes a verify "
             "pass costs one target step — the measured curve shows what it really cost here (mean vs median: noise).",
}


# ---- entry point ----

def build_brief(data, *, decision: Decision | None = None, thresholds: Thresholds | None = None,
                hardware: str | None = None, batch_sizes=config.WHATIF_BATCH_SIZES,
                renderer: ChartRenderer | None = None, charts_on: bool = True, on_warning=None,
                now: datetime | None = None, page_format: str = config.BRIEF_PAGE_FORMAT,
                deployment=None) -> bytes:
    """PDF bytes of the decision brief.

    data: a results dict (schema in notes/common.md) or an Analysis (specdec.analysis.analyze).
    decision: a Decision already made (else decide(analysis, thresholds, hardware, batch_sizes)).
    hardware: profile to project onto (specdec.hardware.PROFILES or "this-machine"; default the
    decision's, else DEFAULT_HARDWARE). renderer: a running ChartRenderer to reuse (the app keeps one);
    else one browser is started for this brief's charts and closed after. charts_on=False leaves the
    images out. on_warning(line) hears why charts were left out. now: the date printed (default: now, UTC).
    """
    engine = data.get("engine") if isinstance(data, dict) else None  # an engine-run's block (engine section)
    if engine is not None and not data["prompts"]:
        return _engine_only_brief(data, renderer, charts_on, on_warning, now, page_format)
    a = data if isinstance(data, Analysis) else analyze(data)
    th = thresholds or (decision.thresholds if decision is not None else Thresholds())
    hardware = hardware or (decision.hardware if decision is not None else config.DEFAULT_HARDWARE)
    d = decision or decide(a, th, hardware, batch_sizes, deployment=deployment,
                           engine_levels=deploy.engine_levels_for(data, deployment))
    now = now or datetime.now(timezone.utc)
    method = charts.primary_method(a, d)
    whatif_all = _whatif_all(a, method, hardware, batch_sizes)
    figs = charts.figures(a, d, hardware=hardware, method=method, batch_sizes=batch_sizes,
                          min_speedup_lo=th.min_speedup_lo,
                          whatif_df=whatif_all[whatif_all["hardware"] == hardware] if len(whatif_all) else whatif_all)
    if engine is not None:
        figs["engine"] = charts.engine_chart(engine)
    images, chart_note = {}, None
    if charts_on:
        try:
            images = _render(figs, renderer)
        except ChartsUnavailable as exc:
            chart_note = f"Charts left out: {exc}."
            if on_warning:
                on_warning(str(exc))
    else:
        chart_note = "Charts left out on request."
    pdf = _Pdf(a.manifest, page_format)
    _front_page(pdf, a, d, th, hardware, method, whatif_all, now)
    if engine is not None:
        _engine_section(pdf, engine, images.get("engine"))
    _charts(pdf, figs, images, chart_note)
    _whatif(pdf, a, d, th, hardware, method, whatif_all)
    _losslessness(pdf, a)
    _methodology(pdf, a, th)
    _caveats(pdf, a, d, th, chart_note)
    _manifest(pdf, a, now)
    pdf.set_creation_date(now)
    return bytes(pdf.output())


def brief_filename(manifest: dict) -> str:
    """A download name for a run's brief: specdec-brief-<run id>.pdf."""
    run = "".join(c if c.isalnum() or c in "-_." else "-" for c in str(manifest.get("run_id") or "run"))
    return f"specdec-brief-{run}.pdf"


def _render(figs: dict, renderer: ChartRenderer | None) -> dict[str, bytes]:
    if renderer is not None:
        return renderer.pngs(figs)
    with ChartRenderer() as r:  # one browser for every chart of this brief
        return r.pngs(figs)


def _whatif_all(a: Analysis, method: str | None, hardware: str, batch_sizes) -> pd.DataFrame:
    """hardware.whatif for the primary method on every profile (plus this machine and `hardware`)."""
    if method is None:
        return pd.DataFrame()
    names = list(dict.fromkeys(list(hw.PROFILES) + [hw.THIS_MACHINE, hardware]))
    return hw.whatif(a, hardware=names, batch_sizes=batch_sizes, methods=[method], category=ALL)


# ---- the PDF canvas ----

class _Pdf(FPDF):
    """A4/Letter, DejaVu fonts, a footer with the run id and page x of y, and small layout helpers."""

    BODY = 9.5  # pt
    LINE = 4.6  # mm per body line

    def __init__(self, manifest: dict, page_format: str):
        super().__init__(orientation="portrait", unit="mm", format=page_format)
        self.run_id = str(manifest.get("run_id") or "")
        self.set_margins(16, 16, 16)
        self.set_auto_page_break(True, margin=18)
        self.add_font(SANS, "", str(FONT_DIR / "DejaVuSans.ttf"))
        self.add_font(SANS, "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))  # pdf.table() headings need it
        self.add_font(MONO, "", str(FONT_DIR / "DejaVuSansMono.ttf"))
        self.set_title("Speculative decoding decision brief")
        self.set_author(f"specdec {__version__}")
        self.set_text_color(34, 34, 34)
        self.add_page()

    # Text from results.json is user data: drop control characters, replace what the font cannot draw.
    def clean(self, text, family: str = SANS) -> str:
        cmap = self.fonts[family.lower()].cmap
        out = []
        for ch in str(text):
            if ch == "\n":
                out.append(ch)
            elif ch == "\t":
                out.append(" ")
            elif ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0:
                continue
            else:
                out.append(ch if ord(ch) in cmap else "?")
        return "".join(out)

    def footer(self):
        self.set_y(-12)
        self.set_font(SANS, "", 7.5)
        self.set_text_color(110, 110, 110)
        self.cell(0, 5, self.clean(f"specdec decision brief · run {self.run_id}"), align="L")
        self.set_x(self.l_margin)
        self.cell(0, 5, f"page {self.page_no()} of {{nb}}", align="R")
        self.set_text_color(34, 34, 34)

    def heading(self, text: str, size: float = 13, space: float = 4, keep: float = 30):
        """A section title; starts a new page when less than `keep` mm are left (never strand a heading)."""
        if self.get_y() > self.page_break_trigger - keep:
            self.add_page()
        self.ln(space)
        self.start_section(self.clean(text))
        self.set_font(SANS, "B", size)
        self.multi_cell(0, size * 0.5, self.clean(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(1.5)
        self.set_font(SANS, "", self.BODY)

    def para(self, text: str, size: float | None = None, colour=(34, 34, 34), markdown: bool = False):
        self.set_font(SANS, "", size or self.BODY)
        self.set_text_color(*colour)
        self.multi_cell(0, (size or self.BODY) * 0.48, self.clean(text), align="L", markdown=markdown,
                        new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_text_color(34, 34, 34)
        self.ln(1.2)

    def bullets(self, items, numbered: bool = False, size: float | None = None):
        size = size or self.BODY
        self.set_font(SANS, "", size)
        for i, text in enumerate(items, start=1):
            mark = f"{i}." if numbered else "•"
            self.set_x(self.l_margin)
            self.cell(6, size * 0.48, mark)
            self.multi_cell(self.epw - 6, size * 0.48, self.clean(text), align="L",
                            new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            self.ln(0.8)
        self.ln(0.8)

    def table(self, headers: list[str], rows: list[list], widths: list[float], align: list[str] | None = None,
              size: float = 8.5, mono_cols=()):
        """A wrapped-text table: cells grow in height, never overflow; headings repeat on a new page."""
        self.set_font(SANS, "", size)
        heading = FontFace(emphasis="BOLD", fill_color=(232, 236, 241))
        with super().table(col_widths=widths, width=self.epw, text_align=align or "LEFT", line_height=size * 0.47,
                           headings_style=heading, borders_layout="HORIZONTAL_LINES", padding=(1.0, 1.2),
                           v_align="TOP") as t:
            r = t.row()
            for h in headers:
                r.cell(self.clean(h))
            for row in rows:
                r = t.row()
                for j, v in enumerate(row):
                    if j in mono_cols:
                        r.cell(self.clean(v, MONO), style=FontFace(family=MONO, size_pt=size - 0.5))
                    else:
                        r.cell(self.clean(v))
        self.ln(2.5)
        self.set_font(SANS, "", self.BODY)

    def rows_height(self, rows: list[list], widths: list[float], line_height: float, size: float) -> float:
        """Estimated height (mm) of a wrapped table: per row its tallest cell, plus padding."""
        self.set_font(SANS, "", size)
        total = 0.0
        for row in rows:
            lines = max(len(self.multi_cell(w - 2.4, line_height, self.clean(v), dry_run=True, output="LINES"))
                        for v, w in zip(row, widths))
            total += lines * line_height + 2.2
        return total

    def code(self, text: str, label: str | None = None, size: float = 7.5):
        """A monospaced block (wrapped if a line is too long), kept on one page with its label."""
        self.set_font(MONO, "", size)
        lines = self.multi_cell(0, size * 0.45, self.clean(text, MONO), padding=1.5, dry_run=True, output="LINES")
        need = len(lines) * size * 0.45 + 3 + (4.5 if label else 0)
        if self.get_y() + need > self.page_break_trigger and need < self.eph / 2:
            self.add_page()
        if label:
            self.set_font(SANS, "B", 8.5)
            self.cell(0, 4.5, self.clean(label), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            self.set_font(MONO, "", size)
        self.set_fill_color(244, 244, 244)
        self.multi_cell(0, size * 0.45, self.clean(text, MONO), fill=True, align="L", padding=1.5,
                        new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_fill_color(255, 255, 255)
        self.set_font(SANS, "", self.BODY)
        self.ln(2)

    def image_block(self, png: bytes, caption: str):
        from PIL import Image

        with Image.open(io.BytesIO(png)) as im:
            w_px, h_px = im.size
        self.set_font(SANS, "", 8)
        cap_h = len(self.multi_cell(self.epw, 3.8, self.clean(caption), dry_run=True, output="LINES")) * 3.8
        # A chart taller than a page (many categories × methods) is scaled down to fit one, centred.
        h_max = self.page_break_trigger - self.t_margin - cap_h - 2
        w = min(self.epw, h_max * w_px / h_px)
        h = w * h_px / w_px
        if self.get_y() + h + cap_h + 2 > self.page_break_trigger:
            self.add_page()
        self.image(io.BytesIO(png), x=self.l_margin + (self.epw - w) / 2, w=w, h=h)
        self.set_text_color(85, 85, 85)
        self.multi_cell(w, 3.8, self.clean(caption), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_text_color(34, 34, 34)
        self.ln(4)


def _brief_versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = [f"specdec {__version__}"]
    for pkg in ("plotly", "kaleido", "fpdf2"):
        try:
            out.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            pass
    return ", ".join(out)


def _hex(colour: str) -> tuple[int, int, int]:
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


# ---- number formatting ----

def _fin(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v)) and np.isfinite(v)


def _x(v, digits: int = 2) -> str:
    return f"{v:.{digits}f}×" if _fin(v) else "n/a"


def _ci(lo, hi) -> str:
    """Three decimals, as the decision prints them: a bound of 1.047 must not read as 1.05."""
    return f"{lo:.3f}–{hi:.3f}×" if _fin(lo) and _fin(hi) else f"too few for a CI: < {config.MIN_CI_PROMPTS}"


def _ms(v) -> str:
    return f"{v:.1f}" if _fin(v) else "n/a"


def _sig(v) -> str:
    """Three significant digits: 0.0213 ms and 41.2 ms both stay readable."""
    return f"{v:.3g}" if _fin(v) else "n/a"


def _pct(v) -> str:
    return f"{100 * v:.0f}%" if _fin(v) else "n/a"


def _model_name(model: dict | None) -> str:
    if not model:
        return "none"
    return str(model.get("spec") or model.get("local_path") or "?")


def _gb(v) -> str:
    """Memory: 'none', '40.0 MB' below 10 MB… '2.00 GB'."""
    if not _fin(v):
        return "unknown"
    if v == 0:
        return "none"
    return f"{v:.2f} GB" if v >= 0.01 else f"{1e3 * v:.1f} MB"


def _drafters_text(a: Analysis) -> str:
    """Every method measured, by label: 'draft model (a), prompt lookup, Medusa heads (4)'."""
    return ", ".join(a.label(k) for k in a.methods) or "none"


# ---- page 1: verdict, summary, segments ----

def _front_page(pdf: _Pdf, a: Analysis, d: Decision, th: Thresholds, hardware: str, method, whatif_all, now):
    m = a.manifest
    models = m.get("models", {})
    pdf.set_font(SANS, "B", 18)
    pdf.multi_cell(0, 8, "Speculative decoding: go / no-go brief", align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(SANS, "", 9)
    pdf.set_text_color(85, 85, 85)
    n = len(a.measurements.prompts)
    cats = a.measurements.prompts["category"].nunique()
    pdf.multi_cell(0, 4.5, pdf.clean(
        f"{now.strftime('%d %B %Y, %H:%M %Z').strip()} · run {m.get('run_id', '?')} ({m.get('status', '?')}) · "
        f"target {_model_name(models.get('target'))}; methods {_drafters_text(a)} · {n} prompts in "
        f"{cats} categor{'y' if cats == 1 else 'ies'} · projected onto {hardware}"),
        align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(34, 34, 34)
    pdf.ln(3)
    fill, ink = VERDICT_COLOURS.get(d.verdict, ("#555555", "#FFFFFF"))
    pdf.set_fill_color(*_hex(fill))
    pdf.set_text_color(*_hex(ink))
    pdf.set_font(SANS, "B", 13)
    pdf.multi_cell(0, 7, pdf.clean(d.headline), fill=True, align="L", padding=(2.5, 4),
                   new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(34, 34, 34)
    pdf.set_fill_color(255, 255, 255)  # tables fill with the current colour: never the banner's
    pdf.ln(1)
    pdf.heading("Summary", 12, 3)
    pdf.para(" ".join(_summary(a, d, th, hardware, method, whatif_all)), size=10)
    pdf.heading("Results by segment", 12, 2)
    pdf.para(f"Measured decode speedup of each category's best configuration on the measuring machine at batch 1 "
             f"(95% CI over prompts). A segment is on when the CI's lower bound reaches {th.min_speedup_lo:.2f}× and "
             f"needs at least {th.min_prompts_per_segment} prompts for a verdict of its own.", size=8.5,
             colour=(85, 85, 85))
    rows = []
    overall = d.evidence.get("overall", {})
    segs = ([dict(overall, category="all prompts")] if len(d.segments) > 1 or d.segments[0].get("category") != ALL
            else []) + [dict(s, category="all prompts" if s["category"] == ALL else s["category"]) for s in d.segments]
    for s in segs:
        has = s.get("method") is not None
        status = STATUS_TEXT.get(s["status"], s["status"])
        if s["status"] == "unclear" and _fin(s.get("prompts_needed")):
            status += f": ~{s['prompts_needed']:.0f} prompts would settle it"
        rows.append([s["category"], str(s["n_prompts"]), a.label(s["method"]) if has else "—",
                     str(s["draft_length"]) if has else "—",
                     f"{_x(s['speedup'])} ({_ci(s['speedup_lo'], s['speedup_hi'])})" if has else "—",
                     f"{_ms(s['base_tpot_ms'])} → {_ms(s['tpot_ms'])}" if has else "—", status])
    pdf.table(["Category", "n", "Method", "γ", "Speedup (95% CI)", "ms/token base → spec", "Verdict"], rows,
              [29, 9, 32, 8, 40, 26, 34], ["LEFT", "RIGHT", "LEFT", "RIGHT", "LEFT", "LEFT", "LEFT"])
    _methods_tables(pdf, a)
    pdf.heading("Why", 12, 1)
    pdf.bullets(d.reasons, numbered=True, size=8.5)
    if d.config and d.snippets:
        g = d.config["draft_length"]
        pdf.heading(f"Configuration to apply: {a.label(d.config['method'])}, γ = {g}", 12, 1)
        pdf.para(f"For {', '.join(d.config['categories']) or 'all traffic'}. Flags as documented by each engine; "
                 "check your engine version.", size=8.5, colour=(85, 85, 85))
        for engine, text in d.snippets.items():
            pdf.code(text, label=engine)


def _methods_tables(pdf: _Pdf, a: Analysis):
    """Every method at its best γ side by side, then the best method × γ per category (compare.py)."""
    table = compare.methods_table(a)
    if table.empty:
        return
    mem_note = (f"memory added beside the target: weights only drafting needs + its own KV cache for one "
                f"{a.memory['context_tokens']:.0f}-token sequence ({a.memory['dtype']})")
    pdf.heading("Methods compared", 12, 2)
    pdf.para(f"Each method at its fastest measured γ, pooled over all prompts (95% CI over prompts); {mem_note}.",
             size=8.5, colour=(85, 85, 85))
    rows = [[r["label"], str(r["draft_length"]), f"{r['alpha']:.2f}",
             f"{r['tau']:.2f} ({r['tau_lo']:.2f}–{r['tau_hi']:.2f})",
             f"{_x(r['speedup'])} ({_ci(r['speedup_lo'], r['speedup_hi'])})",
             _gb(r["extra_total_gb"]) + (f" ({_gb(r['extra_weights_gb'])} weights)"
                                          if _fin(r["extra_kv_gb_per_seq"]) and r["extra_kv_gb_per_seq"] > 0 else "")]
            for _, r in table.iterrows()]
    pdf.table(["Method", "γ", "α", "τ (95% CI)", "Speedup (95% CI)", "Memory added"], rows,
              [44, 8, 12, 30, 42, pdf.epw - 136], ["LEFT", "RIGHT", "RIGHT", "LEFT", "LEFT", "LEFT"], size=8)
    best = compare.best_per_category(a)
    if len(best) > 1 or (len(best) and len(table) > 1):
        pdf.heading("Best choice per category", 12, 1, keep=20 + 6 * len(best))
        rows = [["all prompts" if r["category"] == ALL else r["category"], str(r["n_prompts"]), r["label"],
                 str(r["draft_length"]), f"{_x(r['speedup'])} ({_ci(r['speedup_lo'], r['speedup_hi'])})",
                 _gb(r["extra_total_gb"])] for _, r in best.iterrows()]
        pdf.table(["Category", "n", "Fastest method", "γ", "Speedup (95% CI)", "Memory added"], rows,
                  [30, 9, 50, 8, 42, pdf.epw - 139], ["LEFT", "RIGHT", "LEFT", "RIGHT", "LEFT", "LEFT"], size=8)
        pdf.para("Fastest measured configuration per category; the verdict above asks more — a CI lower bound "
                 "above the bar — so it can name another γ where intervals overlap.", size=8, colour=(85, 85, 85))


def _summary(a: Analysis, d: Decision, th: Thresholds, hardware: str, method, whatif_all) -> list[str]:
    """3–5 sentences with the key numbers, built from the decision's evidence."""
    m = a.manifest
    s = m.get("settings", {})
    hw_m = m.get("hardware", {})
    n = len(a.measurements.prompts)
    cats = sorted(a.measurements.prompts["category"].unique())
    sampling = "greedy decoding" if float(s.get("temperature", 0)) <= 0 else f"sampling at temperature {s.get('temperature')}"
    gam = ", ".join(str(g) for g in s.get("draft_lengths", sorted(a.prompts["draft_length"].unique())))
    out = [f"We decoded {n} prompts in {len(cats)} categor{'y' if len(cats) == 1 else 'ies'} with "
           f"{_model_name(m.get('models', {}).get('target'))} as target, once plainly and once per speculative "
           f"configuration ({_drafters_text(a)}; γ = {gam}), with {sampling} in "
           f"{s.get('dtype', '?')} on {hw_m.get('cpu') or 'this machine'}."]
    o = d.evidence.get("overall", {})
    if o.get("method"):
        row = a.summary[(a.summary["method"] == o["method"]) & (a.summary["draft_length"] == o["draft_length"])]
        win = float(row["win_rate"].iloc[0]) if len(row) else float("nan")
        out.append(f"The best configuration over all prompts, {a.label(o['method'])} with γ = {o['draft_length']}, took decode "
                   f"time from {_ms(o['base_tpot_ms'])} to {_ms(o['tpot_ms'])} ms per token: a speedup of "
                   f"{_x(o['speedup'])} (95% CI {_ci(o['speedup_lo'], o['speedup_hi'])}), and {_pct(win)} of prompts "
                   f"decoded faster than the baseline.")
    else:
        out.append("No speculative configuration has finished, so there is nothing to compare with the baseline yet.")
    if len(d.segments) > 1:
        groups: dict[str, list[str]] = {}
        for seg in d.segments:
            groups.setdefault(seg["status"], []).append(seg["category"])
        phrase = {"on": "pays off for {}", "on (pooled)": "pays off for {} (too small alone, following all prompts)",
                  "off": "does not pay for {}", "unclear": "is unclear for {}",
                  "too-few": "cannot be judged alone for {} (too few prompts each)"}
        parts = [phrase.get(k, k + " for {}").format(", ".join(v)) for k, v in groups.items()]
        out.append("By category, speculation " + "; ".join(parts) + ".")
    if method and len(whatif_all):
        out.append(_projection_sentence(a, whatif_all, hardware, method, th))
    loss = a.lossless
    if loss["applicable"]:
        out.append(f"{loss['identical']} of {loss['runs']} speculative runs reproduced the baseline's output token for "
                   f"token ({_pct(loss['identical_rate'])}), as lossless speculative decoding must under greedy decoding.")
    return out[:5]


def _gamma_cap(a: Analysis, method: str) -> int:
    runs = a.prompts
    return int(runs.loc[runs["method"] == method, "draft_length"].max())


def _projected_best(a: Analysis, whatif_all: pd.DataFrame, hardware: str, method: str, th: Thresholds) -> pd.DataFrame:
    """best_by_batch on one hardware, γ capped at the largest γ run (as the decision recommends)."""
    df = whatif_all[(whatif_all["hardware"] == hardware) & (whatif_all["gamma"] <= _gamma_cap(a, method))]
    return hw.best_by_batch(df, th.min_projected_speedup) if len(df) else pd.DataFrame()


def _projection_sentence(a, whatif_all, hardware, method, th) -> str:
    best = _projected_best(a, whatif_all, hardware, method, th)
    if best.empty:
        return f"No batch size fits {hardware}'s memory in the projection."
    on = best[best["gamma"].notna()]
    head = f"Projected onto {hardware} from the measured acceptance, {a.label(method)}"
    if on.empty:
        return f"{head} stays below {th.min_projected_speedup:.2f}× at every batch size from {best['batch_size'].min()} to {best['batch_size'].max()}."
    top = on.loc[on["speedup"].idxmax()]
    return (f"{head} would reach {_x(top['speedup'])} at batch {int(top['batch_size'])} (γ = {int(top['gamma'])}) and "
            f"stays above {th.min_projected_speedup:.2f}× at batch sizes {_batch_list(on['batch_size'])} — a model "
            f"estimate, not a measurement.")


def _batch_list(values) -> str:
    v = sorted(int(x) for x in values)
    return f"{v[0]}–{v[-1]}" if len(v) > 2 else " and ".join(str(x) for x in v)


# ---- charts ----

def _charts(pdf: _Pdf, figs: dict, images: dict, note: str | None):
    pdf.add_page()
    pdf.heading("Charts", 13, 0)
    if not images:
        pdf.para(note or "Charts left out.", colour=(160, 60, 0))
        pdf.para("Every number the charts would show is in the tables of this brief; the app shows the same charts "
                 "interactively.", size=8.5, colour=(85, 85, 85))
        return
    for name in charts.CHART_NAMES:
        if name in images:
            pdf.image_block(images[name], CHART_CAPTIONS.get(name, ""))


# ---- deployment what-if ----

def _whatif(pdf: _Pdf, a: Analysis, d: Decision, th: Thresholds, hardware: str, method, whatif_all):
    pdf.heading("Deployment what-if", 13)
    if not method or whatif_all is None or whatif_all.empty:
        pdf.para("No projection: the run has no speculative rounds (or no model sizes in its manifest).")
        return
    g_cap = _gamma_cap(a, method)
    pdf.para(f"The measured acceptance of {a.label(method)} (τ for every γ, from the per-position rounds) carried onto serving "
             f"hardware with a roofline model of step times at each batch size. Each cell is the projected speedup "
             f"at the best γ ≤ {g_cap} (the largest γ run), or off where even that stays below "
             f"{th.min_projected_speedup:.2f}×. These are model estimates, not measurements; the assumptions "
             f"follow the tables.", size=9)
    batches = sorted(whatif_all["batch_size"].unique())
    cols = batches if len(batches) <= 6 else [b for b in batches if b in _spread(batches, 6)]
    rows = []
    for name in dict.fromkeys(whatif_all["hardware"]):
        best = _projected_best(a, whatif_all, name, method, th)
        cells = []
        for b in cols:
            r = best[best["batch_size"] == b]
            if r.empty:
                cells.append("does not fit")
            elif pd.isna(r["gamma"].iloc[0]):
                raw = whatif_all[(whatif_all["hardware"] == name) & (whatif_all["batch_size"] == b)
                                 & (whatif_all["gamma"] <= g_cap)]["speedup"].max()
                cells.append(f"off ({_x(raw)})")
            else:
                cells.append(f"{_x(r['speedup'].iloc[0])} γ={int(r['gamma'].iloc[0])}")
        label = name + (" (measured here, calibrated)" if name == hw.THIS_MACHINE else "")
        rows.append([label] + cells)
    w0 = 34
    pdf.table(["Hardware"] + [f"batch {b}" for b in cols], rows, [w0] + [(pdf.epw - w0) / len(cols)] * len(cols),
              ["LEFT"] + ["RIGHT"] * len(cols), size=8)
    _methods_whatif(pdf, a, th, hardware, cols)
    best = _projected_best(a, whatif_all, hardware, method, th)
    detail = whatif_all[(whatif_all["hardware"] == hardware) & (whatif_all["gamma"] <= g_cap)]
    if len(best):
        pdf.para(f"On {hardware}, batch by batch ({a.label(method)}):", size=9)
        rows = []
        for _, r in best.sort_values("batch_size").iterrows():
            g = None if pd.isna(r["gamma"]) else int(r["gamma"])
            pick = detail[(detail["batch_size"] == r["batch_size"])]
            pick = pick[pick["gamma"] == g] if g else pick.loc[[pick["speedup"].idxmax()]]
            p = pick.iloc[0]
            ci = (f" ({p['speedup_lo']:.2f}–{p['speedup_hi']:.2f})" if _fin(p.get("speedup_lo"))
                  and _fin(p.get("speedup_hi")) else "")
            band = (f"{p['speedup_band_lo']:.2f}–{p['speedup_band_hi']:.2f}" if _fin(p.get("speedup_band_lo"))
                    else "measured")
            rows.append([str(int(r["batch_size"])), "off" if g is None else str(g), _x(p["speedup"]) + ci, band,
                         _sig(p["base_ms_per_token"]), _sig(p["sd_ms_per_token"]), f"{p['saving_pct']:.0f}%",
                         f"{p['target_bound']} / {p['verify_bound']}"])
        pdf.table(["Batch", "Best γ", "Speedup (95% CI)", "Assumptions", "Base ms/tok", "Spec ms/tok", "Saving",
                   "Bound (step / verify)"],
                  rows, [13, 13, 36, 24, 22, 22, 16, 32], ["RIGHT"] * 7 + ["LEFT"], size=8)
        pdf.para("The interval resamples the prompts whose acceptance is projected; the assumptions band moves one "
                 "constant of the cost model at a time (per-forward cost and per-layer latency × 0.5 and × 2, "
                 "bandwidth efficiency 0.6 and 0.9).", size=8)
    notes = []
    for item in whatif_all.attrs.get("assumptions", []):
        if str(item["name"]).startswith("hardware "):
            if item["name"] != f"hardware {hardware}":
                continue
            v = item["value"]
            value = (f"{v['bandwidth_gbs']:.0f} GB/s × {v['bandwidth_efficiency']:.2f}, {v['peak_tflops']:.0f} TFLOPS × "
                     f"{v['compute_efficiency']:.2f}, {v['memory_gb']:.0f} GB, {v['layer_latency_us']:.0f} µs per layer"
                     + (f", {v['forward_overhead_us']:.0f} µs per forward" if v.get("forward_overhead_us") else "")
                     + (f", {v['engine']} engine" if v.get("engine") else "")
                     + (f", TP {v['tp']}" if (v.get("tp") or 1) > 1 else ""))
        else:
            value = item["value"] if not isinstance(item["value"], list) else ", ".join(f"{x:.0f}" for x in item["value"])
        notes.append(f"{item['name']}: {value} — {item['note']}")
    pdf.para("Assumptions:", size=9)
    pdf.bullets(notes, size=8)


def _methods_whatif(pdf: _Pdf, a: Analysis, th: Thresholds, hardware: str, cols: list):
    """Every method projected onto `hardware` side by side: best speedup and γ (≤ its largest run) per batch."""
    if len(a.methods) < 2:
        return
    df = hw.whatif(a, hardware=[hardware], batch_sizes=cols, category=ALL)
    rows = []
    for key in a.methods:
        d = df[(df["method"] == key) & (df["gamma"] <= _gamma_cap(a, key))] if len(df) else df
        if d.empty:
            rows.append([a.label(key)] + ["no sizes"] * len(cols))
            continue
        best = hw.best_by_batch(d, th.min_projected_speedup)
        cells = []
        for b in cols:
            r = best[best["batch_size"] == b]
            if r.empty:
                cells.append("does not fit")
            elif pd.isna(r["gamma"].iloc[0]):
                cells.append(f"off ({_x(d[d['batch_size'] == b]['speedup'].max())})")
            else:
                cells.append(f"{_x(r['speedup'].iloc[0])} γ={int(r['gamma'].iloc[0])}")
        rows.append([a.label(key)] + cells)
    pdf.para(f"Every method on {hardware}, at its best γ per batch size:", size=9)
    w0 = 40
    pdf.table(["Method"] + [f"batch {b}" for b in cols], rows, [w0] + [(pdf.epw - w0) / len(cols)] * len(cols),
              ["LEFT"] + ["RIGHT"] * len(cols), size=8)


def _spread(values: list, k: int) -> list:
    idx = np.unique(np.round(np.linspace(0, len(values) - 1, k)).astype(int))
    return [values[i] for i in idx]


# ---- losslessness ----

def _losslessness(pdf: _Pdf, a: Analysis):
    loss = a.lossless
    pdf.heading("Losslessness", 13)
    if loss["applicable"]:
        pdf.para(f"Speculative decoding must not change the output: under greedy decoding every speculative run "
                 f"should emit exactly the baseline's token ids. Here {loss['identical']} of {loss['runs']} runs did "
                 f"({_pct(loss['identical_rate'])}), in {loss['dtype']}."
                 + (" Runs of a lossy acceptance rule are left out of that count and listed below with their drift."
                    if loss.get("lossy") else ""))
    else:
        pdf.para(f"Sampling run (temperature {loss['temperature']:g}): {loss['note']}.")
    runs = a.prompts
    rows = []
    for (mth, g), df in runs.groupby(["method", "draft_length"], sort=True):
        fd = df["first_divergence"].dropna()
        rows.append([a.label(mth), str(g), str(len(df)), str(int(df["identical"].sum())), _pct(df["identical"].mean()),
                     ", ".join(str(int(x)) for x in fd.head(6)) + (" …" if len(fd) > 6 else "") if len(fd) else "—"])
    pdf.table(["Method", "γ", "Runs", "Identical", "Rate", "First divergent token (where not identical)"], rows,
              [40, 10, 14, 18, 14, pdf.epw - 96], ["LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "LEFT"], size=8)
    if loss["applicable"]:
        pdf.para(loss["note"] + ".", size=8.5, colour=(85, 85, 85))


# ---- methodology ----

def _traced_note(traced: dict) -> str:
    """Two sentences on a traced run (specdec.traces): why it is exact for greedy decoding, what its check showed."""
    c = traced.get("check") or {}
    n_real = len(traced.get("real_prompts") or [])
    err = c.get("speedup_error_median")
    return (f"Traced measurement: greedy speculative decoding accepts a drafted token exactly when it equals the "
            f"target's own next token, so the drafter only ever sees the target's prefix inside an accepted run; "
            f"every round of every method × γ was therefore derived from one target generation per prompt with each "
            f"drafter teacher-forced along it, and timed with the cost model of {n_real} prompts also decoded for real "
            f"(all but those are marked traced). The check on those prompts: {c.get('rounds_equal', 0)} of "
            f"{c.get('rounds', 0)} rounds ({c.get('configs_equal', 0)} of {c.get('configs', 0)} configurations) equal "
            f"to the real decoder's, {c.get('baseline_equal', 0)} of {c.get('prompts', 0)} baselines identical"
            + (f", traced speedup within a median {100 * err:.0f}% of the measured one." if err is not None else "."))


def _methodology(pdf: _Pdf, a: Analysis, th: Thresholds):
    s = a.manifest.get("settings", {})
    pdf.heading("Methodology", 13)
    pdf.para("Notation (Leviathan et al. 2023): p is the target model's distribution, q the draft's; γ tokens are "
             "drafted per round and the target verifies them in one forward pass, keeping the accepted prefix plus "
             "one token of its own.")
    pdf.bullets([
        "α — per-token acceptance probability, E[min(p, q)] summed over the vocabulary. Estimated three ways: "
        "accepted ÷ positions tried (the pooled per-position rate), inverted from τ with Eq. (1), and (when sampling) "
        "the mean recorded β = Σ min(p, q). When they disagree by more than "
        f"{config.ALPHA_DISAGREEMENT} acceptance is not i.i.d. and the per-position chart is the one to trust.",
        "τ — tokens emitted per target pass, bonus token included: Σ (accepted + 1) ÷ rounds. Under i.i.d. acceptance "
        "τ = (1 − α^(γ+1)) ÷ (1 − α)  (Eq. 1). vLLM calls it the mean acceptance length.",
        "ρ — accepted ÷ drafted (vLLM's draft acceptance rate). Under i.i.d. acceptance ρ = (τ − 1) ÷ γ, which "
        "understates α and falls as γ grows; this brief reports τ and per-position rates instead of ρ alone.",
        "Speedup (Leviathan Thm 3.8) = (1 − α^(γ+1)) ÷ ((1 − α)(γc + 1)), with c = draft step ÷ target step. It "
        "assumes i.i.d. acceptance and a verify pass that costs one target step; the projection below drops both.",
    ], size=8.8)
    pdf.para(f"How speedup was measured. Every prompt was decoded by the plain target (the baseline) and by each "
             f"method × γ, one after the other per prompt so machine noise hits them alike, after a warm-up, with "
             f"up to {s.get('max_new_tokens', '?')} new tokens. Decode speedup = baseline ms per output token ÷ "
             f"speculative ms per output token, each a ratio of totals over prompts (decode_s ÷ (new tokens − 1)); "
             f"prefill (time to the first token) is timed apart and excluded, since speculation does not change it. "
             f"95% confidence intervals are percentile bootstraps over prompts ({config.BOOTSTRAP_SAMPLES} resamples, "
             f"seed {config.BOOTSTRAP_SEED}), paired: baseline and speculative times are resampled together.", size=9)
    traced = a.manifest.get("traced")
    if s.get("mode") == "traced" and traced:
        pdf.para(_traced_note(traced), size=9)
    rows = []
    for _, r in a.summary[a.summary["method"] != "baseline"].sort_values(["method", "draft_length"]).iterrows():
        rows.append([a.label(r["method"]), str(r["draft_length"]), f"{r['tau']:.2f} ({r['tau_lo']:.2f}–{r['tau_hi']:.2f})",
                     f"{r['alpha_pos']:.2f}", f"{r['alpha_tau']:.2f}", f"{r['rho']:.2f}",
                     f"{_x(r['speedup'])} ({_ci(r['speedup_lo'], r['speedup_hi'])})", _pct(r["win_rate"])])
    if rows:
        pdf.para("Every configuration measured, pooled over all prompts:", size=9)
        pdf.table(["Method", "γ", "τ (95% CI)", "α (pos.)", "α (τ)", "ρ", "Decode speedup (95% CI)", "Prompts faster"],
                  rows, [27, 8, 32, 16, 14, 12, 45, 24], ["LEFT"] + ["RIGHT"] * 7, size=7.8)
    c = a.costs
    c_text = ", ".join(f"{a.label(mth)} {v:.3f}" for mth, v in c.c.items() if mth in a.methods)
    pdf.para(f"The projection over γ. τ at any γ comes from the rounds of each method's largest γ run, truncated "
             f"position by position (a round drafted to γ says exactly what it would have done at any smaller γ); "
             f"beyond that run, fully accepted rounds are extended with the deepest positions' acceptance rate. The "
             f"round time uses the measured cost model instead of γc + 1: target step {1e3 * c.target_step_s:.2f} ms; "
             f"c = {c_text}; verify pass ≈ ({c.verify_intercept:.2f} + {c.verify_slope:.2f} × drafted) target steps "
             f"(fitted to the means); plus the measured per-round bookkeeping.", size=9)
    err = a.projection_error[a.projection_error["category"] == ALL]
    if len(err):
        worst = float(err["speedup_rel_error"].abs().max())
        pdf.para(f"Its measured error, at the γ values actually run (overall): at most {100 * worst:.0f}% on speedup"
                 + (f" — above {100 * config.PROJECTION_TRUST_ERROR:.0f}%, so projected γ values that were not run "
                    f"deserve caution." if worst > config.PROJECTION_TRUST_ERROR else "."), size=9)
        rows = [[a.label(r["method"]), str(r["gamma"]), f"{r['tau_projected']:.2f}", f"{r['tau_measured']:.2f}",
                 _x(r["speedup_projected"]), _x(r["speedup_measured"]), f"{100 * r['speedup_rel_error']:+.0f}%"]
                for _, r in err.iterrows()]
        pdf.table(["Method", "γ", "τ projected", "τ measured", "Speedup projected", "Speedup measured", "Error"],
                  rows, [30, 10, 22, 22, 32, 32, 30], ["LEFT"] + ["RIGHT"] * 6, size=8)
    pdf.para(f"The deployment what-if rescales step times with a roofline over the model sizes in the manifest "
             f"(weights and KV cache read per step vs 2 × parameters FLOPs per token), calibrated to this run on "
             f"this machine; its assumptions are listed with its tables. The decision thresholds: a segment is on "
             f"when its speedup CI's lower bound ≥ {th.min_speedup_lo:.2f}×, a confident verdict needs ≥ "
             f"{th.min_prompts} prompts (≥ {th.min_prompts_per_segment} per category), a batch size is on when its "
             f"projected speedup ≥ {th.min_projected_speedup:.2f}×, and greedy float32 runs must match the baseline "
             f"≥ {100 * th.min_identical_rate:.0f}% of the time.", size=9)


# ---- caveats ----

def _caveats(pdf: _Pdf, a: Analysis, d: Decision, th: Thresholds, chart_note: str | None):
    m = a.manifest
    hw_m, s = m.get("hardware", {}), m.get("settings", {})
    items = [f"Measured on {hw_m.get('cpu') or 'an unnamed machine'} ({hw_m.get('cores', '?')} cores"
             f"{', GPU ' + str(hw_m['gpu']) if hw_m.get('gpu') else ', no GPU'}) at batch 1 in {s.get('dtype', '?')}: "
             f"the absolute milliseconds belong to this machine; other hardware and batch sizes are projections."]
    n = len(a.measurements.prompts)
    if n < th.min_prompts:
        items.append(f"Only {n} prompts (a confident verdict needs ≥ {th.min_prompts}): the intervals are wide, and "
                     "the verdict is about the evidence, not about speculation itself.")
    small = a.measurements.prompts["category"].value_counts()
    small = sorted(small[small < th.min_prompts_per_segment].index)
    if small:
        items.append(f"Categories with fewer than {th.min_prompts_per_segment} prompts ({', '.join(small)}) get no "
                     "verdict of their own.")
    v = a.costs.verify
    if len(v):
        skew = float((v["verify_s"] / v["verify_median_s"]).replace([np.inf], np.nan).max())
        if _fin(skew) and skew > 1.5:
            items.append(f"Timing noise: some verify passes' mean time is {skew:.1f}× their median — the machine was "
                         "busy during the run. Means are used (the measured totals paid for the spikes); rerun on a "
                         "quiet machine for cleaner numbers.")
    items.append("Acceptance belongs to these models, these prompts and these sampling settings "
                 f"(temperature {s.get('temperature', '?')}); another draft, prompt mix or temperature needs a new run.")
    non_iid = a.summary[(a.summary["method"] != "baseline") & (a.summary["alpha_iid"] == False)]  # noqa: E712
    if len(non_iid):
        items.append("Acceptance is not i.i.d. for " + ", ".join(f"{a.label(r['method'])} γ={r['draft_length']}"
                                                                for _, r in non_iid.iterrows())
                     + ": Leviathan's closed form would misjudge the best γ; the projection uses per-position rates.")
    items.extend(a.costs.notes)
    items.extend(a.memory.get("notes", []))
    if s.get("dtype") == "bfloat16" and a.lossless["applicable"]:
        items.append("bfloat16 verify passes round differently from one-token steps; late output divergences are "
                     "expected there and float32 should match exactly.")
    items.append(deploy.weights_note(m))
    items.append("The deployment what-if is a roofline model with engine costs per forward pass and per layer calibrated "
                 "on published runs (README: projected vs published); it ignores attention FLOPs, tree drafting and "
                 "padding, and a given engine version may do better or worse — its sensitivity band shows how much "
                 "the calibrated constants matter.")
    if chart_note:
        items.append(chart_note)
    pdf.heading("Caveats", 13)
    pdf.bullets([str(x).rstrip(".") + "." for x in items], size=8.8)


# ---- manifest ----

def _manifest(pdf: _Pdf, a: Analysis, now: datetime):
    m = a.manifest
    s, v, h = m.get("settings", {}), m.get("versions", {}), m.get("hardware", {})
    rows = [["Run", f"{m.get('run_id', '?')} — {m.get('status', '?')}; created {m.get('created', '?')}, "
                    f"finished {m.get('finished') or '—'}"],
            ["Workload", f"{s.get('workload', '?')} ({len(a.measurements.prompts)} prompts)"],
            ["Workload sha256", s.get("workload_sha256", "?")]]
    for role in ("target", "draft"):
        mod = m.get("models", {}).get(role)
        if not mod:
            rows.append([role.capitalize(), "none (prompt lookup only)"])
            continue
        rows.append([role.capitalize(), f"{mod.get('spec', '?')} — {mod.get('parameters', 0) / 1e6:,.1f} M parameters, "
                                        f"{mod.get('num_layers', '?')} layers, hidden {mod.get('hidden_size', '?')}, "
                                        f"vocabulary {mod.get('vocab_size', '?')}, {mod.get('dtype', '?')} on "
                                        f"{mod.get('device', '?')}" + (f" (matmul: {mod['linear']})" if mod.get("linear") else "")
                                        + f"; {mod.get('local_path', '')}"])
        rows.append([f"{role.capitalize()} sha256", mod.get("sha256") or "not recorded (a local model directory)"])
    for key, info in a.drafters.items():
        if not info.get("parameters") and not methods.uses_model(key):
            continue
        extra = info.get("extra_parameters") or 0
        rows.append([f"Drafter: {a.label(key)}",
                     f"{info.get('spec') or '?'} — one draft step reads {(info.get('parameters') or 0) / 1e6:,.1f} M "
                     f"parameters over {info.get('num_layers', '?')} layers; "
                     + (f"adds {extra / 1e6:,.1f} M parameters" if extra else "adds no weights")
                     + (f" and {info['kv_layers']} layers of KV cache" if info.get("kv_layers") else "")
                     + (" (size estimated)" if info.get("estimated") else "")])
    rows += [["Settings", f"methods {', '.join(s.get('methods', []))}; γ = {', '.join(map(str, s.get('draft_lengths', [])))}; "
                          f"max new tokens {s.get('max_new_tokens', '?')}; max prompts {s.get('max_prompts') or 'all'}; "
                          f"temperature {s.get('temperature', '?')}, top-p {s.get('top_p', '?')}, top-k {s.get('top_k', '?')}; "
                          f"dtype {s.get('dtype', '?')}; device {s.get('device', '?')}"],
             ["Seed", f"{s.get('seed', '?')} (decoding); bootstrap seed {config.BOOTSTRAP_SEED}, {config.BOOTSTRAP_SAMPLES} resamples"],
             ["Hardware", f"{h.get('cpu', '?')}; {h.get('cores', '?')} cores; {h.get('memory_gb', '?')} GB memory; "
                          f"GPU {h.get('gpu') or 'none'}" + (f"; {h['platform']}" if h.get("platform") else "")],
             ["Versions", "; ".join(f"{k} {val}" for k, val in v.items())
              + f" — brief built {now.strftime('%Y-%m-%d %H:%M %Z').strip()} with {_brief_versions()}"]]
    mono = {i for i, r in enumerate(rows) if r[0].endswith("sha256") and not str(r[1]).startswith("not ")}
    widths = [32, pdf.epw - 32]
    # The table reads best on one page: start a new one unless it fits in what is left of this one.
    pdf.heading("Run manifest", 13, keep=min(pdf.eph * 0.8, 14 + pdf.rows_height(rows, widths, 4.0, 8.5)))
    pdf.set_font(SANS, "", 8.5)
    heading = FontFace(emphasis="BOLD", fill_color=(232, 236, 241))
    with FPDF.table(pdf, col_widths=widths, width=pdf.epw, text_align="LEFT", line_height=4.0,
                    headings_style=heading, borders_layout="HORIZONTAL_LINES", padding=(1.0, 1.2),
                    v_align="TOP", first_row_as_headings=False) as t:
        for i, (k, val) in enumerate(rows):
            r = t.row()
            r.cell(pdf.clean(k), style=FontFace(emphasis="BOLD"))
            if i in mono:
                r.cell(pdf.clean(val, MONO), style=FontFace(family=MONO, size_pt=8))
            else:
                r.cell(pdf.clean(val))


# ---- engine run (specdec.engines; analysis.engine) ----

ENGINE_CAPTION = ("Read: above the dashed 1× line SD serves more output tokens/s than the same engine without it; "
                  "a CI bar that crosses 1× cannot be told apart from no gain. As concurrency grows the engine "
                  "batches requests, decoding turns compute-bound and verifying γ + 1 tokens per request costs more: "
                  "the ratio falls, and the dotted line marks where it crosses 1×.")


def _engine_section(pdf: _Pdf, engine: dict, png: bytes | None, new_page: bool = True):
    """Measured on a serving engine under load: verdict, chart, the per-level table, the measured config."""
    s, dec = engine["settings"], engine["decision"]
    if new_page:
        pdf.add_page()
    pdf.heading(f"Measured on the serving engine: {engine['engine']}", 13, 0)
    pdf.para(f"{engine['engine']} {engine.get('version') or ''} · model {engine['model']} · {s.get('prompts', '?')} "
             f"prompts × {s['max_new_tokens']} output tokens, greedy · concurrency "
             f"{', '.join(map(str, s['concurrency']))} (closed loop"
             + (f", Poisson {s['request_rate']} req/s" if s.get("request_rate") else "") + "). Acceptance is the "
             "engine's own counters over each level (/metrics after − before).", size=8.5, colour=(85, 85, 85))
    pdf.para(dec["headline"], size=10)
    if png is not None:
        pdf.image_block(png, ENGINE_CAPTION)
    rows = []
    for r in engine["levels"]:
        ci, itl = r["ratio"], r["itl_ratio"]
        rows.append([str(r["draft_length"] or "—"), str(r["concurrency"]), f"{r['baseline_tokens_per_s']:.1f}",
                     f"{r['sd_tokens_per_s']:.1f}",
                     f"{_x(ci['estimate'])} ({_ci(ci['lo'], ci['hi'])})" if ci["estimate"] is not None else "—",
                     f"{_x(itl['estimate'])} ({_ci(itl['lo'], itl['hi'])})" if itl["estimate"] is not None else "—",
                     _sig(r["alpha"]) if r["alpha"] is not None else "—",
                     f"{r['tau']:.2f}" if r["tau"] is not None else "—"])
    pdf.table(["γ", "C", "base tok/s", "SD tok/s", "Throughput ratio (95% CI)", "p50 ITL ratio (95% CI)", "α", "τ"],
              rows, [9, 9, 19, 17, 42, 42, 14, 14], ["RIGHT"] * 4 + ["LEFT", "LEFT", "RIGHT", "RIGHT"])
    pdf.para("Throughput ratio: SD over baseline output tokens/s (busy-time rate Σ tokens / Σ request time, requests "
             "paired by prompt; bootstrap-t 95% CI). ITL ratio: median per-request inter-token latency, SD over "
             "baseline (below 1 is faster). α = accepted / drafted tokens, τ = 1 + accepted / drafts (bonus token "
             "included), from the engine's counters.", size=8, colour=(85, 85, 85))
    best = {lv["concurrency"]: lv for lv in dec["per_level"]}
    if best:
        verdicts = {True: "SD pays", False: "SD does not pay", None: "unclear (interval straddles the bar, or none)"}
        pdf.bullets([f"Concurrency {c}: " + (f"γ = {lv['draft_length']} " if lv["draft_length"] else "")
                     + f"({_x(lv['ratio']['estimate'])}) — {verdicts[lv['pays']]}" for c, lv in best.items()],
                    size=8.5)
    spec_sides = [sd for sd in engine["sides"] if sd.get("launch") and sd["draft_length"] is not None]
    if spec_sides:
        pick = max(best.values(), key=lambda lv: lv["ratio"]["estimate"] or 0)["draft_length"] if best else None
        side = next((sd for sd in spec_sides if sd["draft_length"] == pick), spec_sides[0])
        pdf.code(" ".join(side["launch"]), label=f"measured launch command (γ = {side['draft_length']})")


def _engine_only_brief(data: dict, renderer, charts_on: bool, on_warning, now, page_format: str) -> bytes:
    """A results.json holding only an engine run (no in-process prompts): title, the engine section."""
    engine = data["engine"]
    now = now or datetime.now(timezone.utc)
    png = None
    if charts_on:
        try:
            png = _render({"engine": charts.engine_chart(engine)}, renderer).get("engine")
        except ChartsUnavailable as exc:
            if on_warning:
                on_warning(str(exc))
    pdf = _Pdf(data["manifest"], page_format)
    pdf.set_font(SANS, "B", 18)
    pdf.multi_cell(0, 8, "Speculative decoding on a serving engine", align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.para(f"{now.strftime('%d %B %Y, %H:%M %Z').strip()} · run {data['manifest'].get('run_id', '?')} · "
             "no in-process measurement in this file (run `python -m specdec run` into the same --out for the "
             "batch-1 verdict beside this one)", size=9, colour=(85, 85, 85))
    pdf.ln(3)
    _engine_section(pdf, engine, png, new_page=False)
    pdf.set_creation_date(now)
    return bytes(pdf.output())
