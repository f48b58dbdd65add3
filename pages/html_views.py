"""The few views the pages draw that Streamlit has no widget for: token chips coloured by their fate in a
verify round, the rounds of one prompt, two outputs with their divergence marked; and the column formats of
the pages' tables. Drawing only: the data comes from specdec.present.views.
"""

from __future__ import annotations

import html

import streamlit as st

_CHIP = ("display:inline-block;margin:2px 3px 2px 0;padding:1px 6px;border-radius:4px;font-family:monospace;"
         "font-size:0.85rem;white-space:pre;")
STYLE = {"accepted": "background:#d7f0e3;border:1px solid #009E73;",
         "rejected": "background:#fbe0d3;border:1px solid #D55E00;text-decoration:line-through;",
         "discarded": "background:#f1f1f1;border:1px dashed #999;color:#888;text-decoration:line-through;",
         "bonus": "background:#d6e9f8;border:2px solid #0072B2;font-weight:bold;",
         "resampled": "background:#fff3c4;border:2px solid #E69F00;font-weight:bold;",
         "target step": "background:#d6e9f8;border:1px solid #0072B2;",
         "cut": ""}
LEGEND = {"accepted": "accepted draft", "rejected": "first rejected draft: the proposal is cut here",
          "discarded": "drafted after a rejection, unused", "bonus": "free extra token after a fully accepted draft",
          "resampled": "target's token in place of the rejected one", "target step": "nothing drafted: a plain step"}


def chip(text: str, kind: str, title: str = "") -> str:
    return f"<span style='{_CHIP}{STYLE.get(kind, '')}' title='{html.escape(title, quote=True)}'>{html.escape(text)}</span>"


def legend_html() -> str:
    return "<div style='line-height:2'>" + "".join(
        f"<span style='white-space:nowrap;margin-right:14px'>{chip(k, k, v)}"
        f"<span style='font-size:0.8rem;color:#555'>{html.escape(v)}</span></span>" for k, v in LEGEND.items()) + "</div>"


SUMMARY_COLUMNS = {
    "method": st.column_config.TextColumn("method"), "draft_length": st.column_config.NumberColumn("γ"),
    "n_prompts": st.column_config.NumberColumn("prompts"),
    "tau": st.column_config.NumberColumn("τ", format="%.2f"), "tau_lo": st.column_config.NumberColumn("τ low", format="%.2f"),
    "tau_hi": st.column_config.NumberColumn("τ high", format="%.2f"),
    "speedup": st.column_config.NumberColumn("speedup", format="%.2f×"),
    "speedup_lo": st.column_config.NumberColumn("CI low", format="%.2f×"),
    "speedup_hi": st.column_config.NumberColumn("CI high", format="%.2f×"),
    "tpot_ms": st.column_config.NumberColumn("ms/token", format="%.1f"),
    "base_tpot_ms": st.column_config.NumberColumn("baseline ms/token", format="%.1f"),
    "identical_rate": st.column_config.NumberColumn("same as baseline", format="percent"),
}


COMPARE_COLUMNS = {
    "γ": st.column_config.NumberColumn("γ"), "α": st.column_config.NumberColumn("α", format="%.2f"),
    "τ": st.column_config.NumberColumn("τ", format="%.2f"),
    "speedup": st.column_config.NumberColumn("speedup", format="%.2f×"),
    "CI low": st.column_config.NumberColumn("CI low", format="%.2f×"),
    "CI high": st.column_config.NumberColumn("CI high", format="%.2f×"),
    "memory added (GB)": st.column_config.NumberColumn("memory added (GB)", format="%.3f",
                                                      help="weights only drafting needs + its own KV cache for one "
                                                           "sequence; layer-skip and prompt lookup add none"),
}


def cycles_html(cycles: list[dict], pieces) -> str:
    """One line per verify round: drafted tokens coloured by fate with β (the probability the target
    accepts that token) under each, then the target's own token. pieces: ids -> [str]."""
    rows = []
    for c in cycles:
        drafted = pieces(c["drafted"])
        cells = []
        for j, (text, state) in enumerate(zip(drafted, c["status"])):
            beta = c["beta"][j] if c["beta"] else None
            tip = f"position {j + 1}: {state}" + (f", β = {beta:.2f}" if beta is not None else "")
            under = f"{beta:.2f}" if beta is not None else "&nbsp;"
            cells.append(f"<span style='display:inline-flex;flex-direction:column;align-items:center;min-width:2.6rem'>"
                         f"{chip(text, state, tip)}<span style='font-size:0.7rem;color:#666'>{under}</span></span>")
        if c["next_token"] is not None:
            text = pieces([c["next_token"]])[0]
            cells.append(f"<span style='display:inline-flex;flex-direction:column;align-items:center;min-width:2.6rem;"
                         f"margin-left:8px'>{chip(text, c['next_kind'], LEGEND.get(c['next_kind'], ''))}"
                         f"<span style='font-size:0.7rem;color:#666'>{html.escape(c['next_kind'])}</span></span>")
        head = (f"<span style='display:inline-block;min-width:10rem;font-size:0.8rem;color:#333'>"
                f"round {c['round']} · {c['accepted']}/{len(c['drafted'])} accepted<br>"
                f"<span style='color:#777'>draft {c['draft_ms']:.0f} ms · verify {c['verify_ms']:.0f} ms</span></span>")
        rows.append(f"<div style='display:flex;align-items:flex-start;gap:6px;padding:4px 0;"
                    f"border-bottom:1px solid #eee'>{head}<div>{''.join(cells)}</div></div>")
    return "".join(rows)


def diverge_html(text: str, common: int) -> str:
    """The text with the part after the shared prefix highlighted (where it parts from the other output)."""
    same, rest = html.escape(text[:common]), html.escape(text[common:])
    mark = f"<mark style='background:#fbe0d3'>{rest}</mark>" if rest else ""
    return f"<div style='white-space:pre-wrap;font-family:monospace;font-size:0.85rem'>{same}{mark}</div>"
