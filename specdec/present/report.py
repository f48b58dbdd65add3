"""The PDF decision brief: build_brief(...) -> bytes, the sections assembled in order.

Contents, in order: title and date; the verdict in one colour-coded line; an executive summary of
3–5 sentences with the key numbers; the per-segment table (category, method, γ, speedup with CI,
verdict); every method side by side (α, τ, speedup with CI and the memory it adds, at its best γ) and
the best choice per category (specdec.analysis.compare); the decision's reasons; the configuration to apply (when the verdict is a go); seven
charts (specdec.present.charts, the same figures the app shows); the deployment what-if tables; the
losslessness evidence; methodology (α, τ, ρ and speedup with formulas, how speedup was measured,
the projection's assumptions and measured error); caveats; the run manifest.

The canvas (fonts, blocks; the only module that knows fpdf2) is specdec.present.pdf_canvas; the sections are in
specdec.present.brief_sections and brief_deploy; number spelling in specdec.present.words. This module assembles.
Chart images come from specdec.present.chart_images (kaleido + system Chromium, one browser per brief unless
a running ChartRenderer is passed in). Without a browser the brief is still built, with a note in
place of the charts, and on_warning receives the one-line reason.

Public API
    build_brief(data, *, decision=None, thresholds=None, hardware=None, batch_sizes=…, renderer=None,
                charts=True, on_warning=None, now=None, page_format=…) -> bytes
    brief_filename(manifest) -> str
"""

from __future__ import annotations

from datetime import datetime, timezone

from specdec import config
from specdec.analysis import deploy, engine_check
from specdec.analysis.decision import Decision, Thresholds, decide
from specdec.analysis.summary import Analysis, analyze
from specdec.present import charts, deploy_charts
from specdec.present.brief_deploy import engine_section, whatif_all, whatif_pages
from specdec.present.brief_sections import caveats, charts_pages, front_page, losslessness, methodology, run_manifest
from specdec.present.chart_images import ChartRenderer, ChartsUnavailable
from specdec.present.pdf_canvas import BriefPdf


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
    projected = whatif_all(a, method, hardware, batch_sizes)
    figs = charts.figures(a, d, hardware=hardware, method=method, batch_sizes=batch_sizes,
                          min_speedup_lo=th.min_speedup_lo,
                          whatif_df=projected[projected["hardware"] == hardware] if len(projected) else projected)
    if engine is not None:
        figs["engine"] = deploy_charts.engine_chart(engine)
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
    pdf = BriefPdf(a.manifest, page_format)
    front_page(pdf, a, d, th, hardware, method, projected, now)
    if engine is not None:
        engine_section(pdf, engine, images.get("engine"), check=engine_check.projected_vs_measured(data, a))
    charts_pages(pdf, figs, images, chart_note)
    whatif_pages(pdf, a, d, th, hardware, method, projected)
    losslessness(pdf, a)
    methodology(pdf, a, th)
    caveats(pdf, a, d, th, chart_note)
    run_manifest(pdf, a, now)
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


def _engine_only_brief(data: dict, renderer, charts_on: bool, on_warning, now, page_format: str) -> bytes:
    """A results.json holding only an engine run (no in-process prompts): title, the engine section."""
    engine = data["engine"]
    now = now or datetime.now(timezone.utc)
    png = None
    if charts_on:
        try:
            png = _render({"engine": deploy_charts.engine_chart(engine)}, renderer).get("engine")
        except ChartsUnavailable as exc:
            if on_warning:
                on_warning(str(exc))
    pdf = BriefPdf(data["manifest"], page_format)
    pdf.title_line("Speculative decoding on a serving engine")
    pdf.para(f"{now.strftime('%d %B %Y, %H:%M %Z').strip()} · run {data['manifest'].get('run_id', '?')} · "
             "no in-process measurement in this file (run `python -m specdec run` into the same --out for the "
             "batch-1 verdict beside this one)", size=9, colour=(85, 85, 85))
    pdf.ln(3)
    engine_section(pdf, engine, png, new_page=False, check=engine_check.projected_vs_measured(data))
    pdf.set_creation_date(now)
    return bytes(pdf.output())
