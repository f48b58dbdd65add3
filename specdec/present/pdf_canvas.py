"""The PDF canvas of the brief: page format, DejaVu fonts, footer, and the blocks the sections are set in
(heading, paragraph, bullets, wrapped table, key–value table, code block, image with caption). The only module
that knows the PDF library (fpdf2); the brief's sections (specdec.present.brief_sections) only call these.

Text is set in DejaVu Sans, shipped in specdec/present/fonts (fpdf2's built-in fonts lack ≥ × γ α τ), and any
character the font lacks is replaced by "?" before it reaches the page, so nothing renders blank.

Public API
    BriefPdf(manifest, page_format): an FPDF with .clean .heading .para .bullets .table .key_value_table
        .rows_height .code .image_block .title_line .banner .byline
    hex_rgb("#RRGGBB") -> (r, g, b)
"""

from __future__ import annotations

import io
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

from specdec import __version__

FONT_DIR = Path(__file__).parent / "fonts"
SANS, MONO = "DejaVuSans", "DejaVuSansMono"


class BriefPdf(FPDF):
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


    def title_line(self, text: str, size: float = 18, height: float = 8):
        """The document's title line."""
        self.set_font(SANS, "B", size)
        self.multi_cell(0, height, self.clean(text), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def byline(self, text: str, size: float = 9, height: float = 4.5, colour=(85, 85, 85)):
        """A grey line under the title (date, run, models), set tighter than a paragraph."""
        self.set_font(SANS, "", size)
        self.set_text_color(*colour)
        self.multi_cell(0, height, self.clean(text), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_text_color(34, 34, 34)

    def banner(self, text: str, fill: str, ink: str, size: float = 13):
        """One line on a coloured band (the verdict): fill and ink as '#RRGGBB'."""
        self.set_fill_color(*hex_rgb(fill))
        self.set_text_color(*hex_rgb(ink))
        self.set_font(SANS, "B", size)
        self.multi_cell(0, 7, self.clean(text), fill=True, align="L", padding=(2.5, 4),
                        new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_text_color(34, 34, 34)
        self.set_fill_color(255, 255, 255)  # tables fill with the current colour: never the banner's

    def key_value_table(self, rows: list[list], widths: list[float], mono_rows=(), size: float = 8.5,
                        line_height: float = 4.0):
        """Two columns, bold keys, no heading row; values of the rows in `mono_rows` set monospaced."""
        self.set_font(SANS, "", size)
        heading = FontFace(emphasis="BOLD", fill_color=(232, 236, 241))
        with FPDF.table(self, col_widths=widths, width=self.epw, text_align="LEFT", line_height=line_height,
                        headings_style=heading, borders_layout="HORIZONTAL_LINES", padding=(1.0, 1.2),
                        v_align="TOP", first_row_as_headings=False) as t:
            for i, (k, val) in enumerate(rows):
                r = t.row()
                r.cell(self.clean(k), style=FontFace(emphasis="BOLD"))
                if i in mono_rows:
                    r.cell(self.clean(val, MONO), style=FontFace(family=MONO, size_pt=size - 0.5))
                else:
                    r.cell(self.clean(val))


def hex_rgb(colour: str) -> tuple[int, int, int]:
    """'#RRGGBB' → (r, g, b)."""
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)
