"""The bench result as a terminal table and as one self-contained HTML file (inline CSS and SVG, no network)."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def _scored(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [s for s in result["strategies"] if "skipped" not in s]


def strategy_rows(result: Mapping[str, Any]) -> list[list[str]]:
    head = [
        "strategy",
        "hits",
        "safe",
        "bad",
        "safe rate",
        "safe recall",
        "bad rate",
        "bad/must-miss",
        "precision",
        "tokens saved",
        "USD saved",
        "USD saved (safe)",
    ]
    rows = [head]
    for s in _scored(result):
        rows.append(
            [
                s["name"],
                str(s["hits"]),
                str(s["safe_hits"]),
                str(s["bad_hits"]),
                _pct(s["safe_hit_rate"]),
                _pct(s["safe_recall"]),
                _pct(s["bad_hit_rate"]),
                _pct(s["bad_hit_rate_must_miss"]),
                _pct(s["precision"]),
                f"{s['tokens_saved']:,}",
                s["usd_saved"] + (f" (+{s['unpriced_hits']} unpriced)" if s["unpriced_hits"] else ""),
                s["usd_saved_safe"],
            ]
        )
    return rows


def family_rows(result: Mapping[str, Any]) -> list[list[str]]:
    """Per family: trap families show bad hits (failures), safe families show hits (reuse), per strategy."""
    scored = _scored(result)
    rows = [["family", "kind", "pairs", *(s["name"] for s in scored)]]
    for family, info in result["families"].items():
        trap = info["must_miss"] == info["pairs"]
        kind = "trap" if trap else ("safe" if info["must_miss"] == 0 else "mixed")
        cells = []
        for s in scored:
            fam = s["families"][family]
            cells.append(str(fam["bad_hits"] if info["must_miss"] else fam["hits"]))
        rows.append([family, kind, str(info["pairs"]), *cells])
    return rows


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def terminal(result: Mapping[str, Any]) -> str:
    out = [
        f"CacheSafety Bench: {result['pairs']} pairs ({result['must_miss']} must miss, "
        f"{result['same_answer']} may hit), replay_price_ratio {result['replay_price_ratio']}",
        "",
        table(strategy_rows(result)),
    ]
    for s in result["strategies"]:
        if "skipped" in s:
            out.append(f"{s['name']}: skipped: {s['skipped']}")
    out += [
        "",
        "Per family (trap rows: bad hits = failures; safe rows: hits = answers reused)",
        "",
        table(family_rows(result)),
    ]
    return "\n".join(out)


# --- HTML -------------------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1b1f24;background:#fff}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}th,td{padding:4px 10px;border-bottom:1px solid #d8dde3;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f2f4f7}
td.bad{color:#b42318;font-weight:600}td.zero{color:#067647}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
.note{color:#555}
"""
_SAFE, _BAD = "#12b76a", "#f04438"


def _chart(result: Mapping[str, Any]) -> str:
    scored = _scored(result)
    total = max(result["pairs"], 1)
    label_w, bar_w, row_h = 130, 560, 26
    height = row_h * len(scored) + 30
    parts = [
        f'<svg id="chart" xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 150}" '
        f'height="{height}" role="img" aria-label="safe and bad hits per strategy">'
    ]
    for i, s in enumerate(scored):
        y = 10 + i * row_h
        safe_w = bar_w * s["safe_hits"] / total
        bad_w = bar_w * s["bad_hits"] / total
        name = html.escape(s["name"])
        parts.append(f'<text x="0" y="{y + 15}" font-size="13">{name}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{bar_w}" height="18" fill="#f2f4f7"/>')
        parts.append(
            f'<rect class="safe" data-strategy="{name}" x="{label_w}" y="{y}" width="{safe_w:.1f}" '
            f'height="18" fill="{_SAFE}"><title>{name}: {s["safe_hits"]} safe hits</title></rect>'
        )
        parts.append(
            f'<rect class="bad" data-strategy="{name}" x="{label_w + safe_w:.1f}" y="{y}" '
            f'width="{bad_w:.1f}" height="18" fill="{_BAD}"><title>{name}: {s["bad_hits"]} bad hits'
            f"</title></rect>"
        )
        parts.append(
            f'<text x="{label_w + bar_w + 8}" y="{y + 15}" font-size="12">'
            f"{s['safe_hits']} safe / {s['bad_hits']} bad</text>"
        )
    parts.append(
        f'<text x="{label_w}" y="{height - 4}" font-size="11" fill="#555">bar = all {total} pairs</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _html_table(rows: list[list[str]], *, mark_bad_from: int | None = None) -> str:
    out = ["<table><thead><tr>", *(f"<th>{html.escape(c)}</th>" for c in rows[0]), "</tr></thead><tbody>"]
    for row in rows[1:]:
        out.append("<tr>")
        for i, cell in enumerate(row):
            cls = ""
            if mark_bad_from is not None and i >= mark_bad_from and row[1] == "trap":
                cls = ' class="zero"' if cell == "0" else ' class="bad"'
            out.append(f"<td{cls}>{html.escape(cell)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _kv_table(title: str, section: Mapping[str, Any]) -> str:
    rows = [["", ""]] + [[k, str(v)] for k, v in section.items() if not isinstance(v, dict | list)]
    return f"<h2>{html.escape(title)}</h2>" + _html_table(rows).replace(
        "<th></th><th></th>", "<th>check</th><th>value</th>"
    )


def ledger_rows(section: Mapping[str, Any]) -> list[list[str]]:
    rows = [["strategy", "unverified hits", "answer-neutral", "answer-changing", "differing fields",
             "USD would save"]]  # fmt: skip
    for s in section["strategies"]:
        fields = ", ".join(f"{k} {v}" for k, v in s["differing_fields"].items()) or "-"
        rows.append([s["name"], str(s["unverified_hits"]), str(s["answer_neutral"]), str(s["answer_changing"]),
                     fields, s["usd_would_save"]])  # fmt: skip
    return rows


def _ledger_html(section: Mapping[str, Any]) -> str:
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in section["cannot_read"])
    return (
        _kv_table("Your traffic (--ledger)", section)
        + "<h2>What looser strategies would have hit (unverified)</h2>"
        + _html_table(ledger_rows(section))
        + f"<p class=note>Not readable from a ledger:</p><ul class=note>{notes}</ul>"
        + "<p class=note>Message contents are never written to this report (--show prints them to the terminal).</p>"
    )


def html_page(result: Mapping[str, Any]) -> str:
    extra = ""
    if isinstance(result.get("live"), Mapping):
        extra += _kv_table("End to end on the real cache (--live)", result["live"])
    if isinstance(result.get("ledger"), Mapping):
        extra += _ledger_html(result["ledger"])
    head = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<title>CacheSafety Bench</title>"
        f"<style>{_CSS}</style></head><body>"
        "<h1>CacheSafety Bench</h1>"
    )
    if not result["strategies"]:
        return f"{head}{extra}</body></html>\n"
    skipped = "".join(
        f"<p class=note>{html.escape(s['name'])}: skipped: {html.escape(s['skipped'])}</p>"
        for s in result["strategies"]
        if "skipped" in s
    )
    return (
        head
        + f"<p>{result['pairs']} labelled pairs: {result['must_miss']} must miss, {result['same_answer']} may hit. "
        f"Savings priced at replay_price_ratio {html.escape(str(result['replay_price_ratio']))}.</p>"
        "<h2>Safe vs bad hits per strategy</h2>"
        f'<p class=legend><span style="background:{_SAFE}"></span>safe hits'
        f'<span style="background:{_BAD}"></span>bad hits</p>'
        f"{_chart(result)}{skipped}"
        "<h2>Metrics</h2>"
        f"{_html_table(strategy_rows(result))}"
        "<h2>Per family</h2><p class=note>Trap rows: bad hits (wrong answers served). Safe rows: hits.</p>"
        f"{_html_table(family_rows(result), mark_bad_from=3)}"
        f"{extra}</body></html>\n"
    )
