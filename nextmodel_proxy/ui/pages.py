"""The dashboard's HTML, rendered on the server from the views' dicts (pure: dict in, text out).

Every value is escaped; chart data rides in a <script type="application/json"> block that app.js reads, so
the Content-Security-Policy can stay `default-src 'self'` with no inline script or style.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import orjson

from nextmodel_proxy.ledger.receipts import SERVED_MODES

COMMON_ZONES = (
    "UTC", "Europe/London", "Europe/Berlin", "America/New_York", "America/Los_Angeles", "Asia/Kolkata",
    "Asia/Ho_Chi_Minh", "Asia/Shanghai", "Asia/Singapore", "Asia/Tokyo", "Australia/Sydney",
)  # fmt: skip
BREAKDOWN_TITLES = {
    "key": "Key",
    "project": "Project",
    "team": "Team",
    "model": "Model",
    "provider": "Provider",
}


def e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def page(title: str, body: str, *, viewer: str | None, signed_in: bool, active: str, query: str = "") -> str:
    nav = "".join(
        f'<a href="{href}{query}"{" class=active" if name == active else ""}>{label}</a>'
        for name, href, label in (("overview", "/ui", "Overview"), ("receipts", "/ui/receipts", "Receipts"))
    )
    who = ""
    if viewer is not None:
        out = (
            '<form method="post" action="/ui/logout" class="inline"><button type="submit">Sign out</button></form>'
            if signed_in
            else ""
        )
        who = f'<span class="who">Viewing as {e(viewer)}</span>{out}'
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} · NextModel Proxy</title>"
        '<link rel=stylesheet href="/ui/static/vendor/uPlot.min.css"><link rel=stylesheet href="/ui/static/style.css">'
        '<script src="/ui/static/vendor/uPlot.iife.min.js" defer></script><script src="/ui/static/app.js" defer></script>'
        f'</head><body><header><strong class="brand">NextModel Proxy</strong><nav>{nav}</nav>{who}</header>'
        f"<main>{body}</main></body></html>"
    )


def problem(message: str) -> str:
    """An in-place notice for a bad filter or range (the JSON API answers 400 for the same input)."""
    return f'<p class="problem" role="alert">{e(message)}</p>'


def range_form(action: str, params: Mapping[str, str], tz: str, extra: str = "") -> str:
    zones = "".join(f"<option value={e(z)}>" for z in COMMON_ZONES)
    return (
        f'<form class="filters" method="get" action="{action}">'
        f'<label>From <input type=date name=from value="{e(params.get("from", ""))}"></label>'
        f'<label>To <input type=date name=to value="{e(params.get("to", ""))}"></label>'
        f'<label>Time zone <input name=tz list=zones value="{e(params.get("tz") or tz)}" size=18></label>'
        f"<datalist id=zones>{zones}</datalist>{extra}<button type=submit>Apply</button></form>"
    )


def _tile(label: str, value: str, note: str = "", name: str = "", exact: Any = None) -> str:
    """One figure; `exact` (the unrounded value, e.g. exact decimal USD) rides in data-exact for scripts."""
    data = f' data-tile="{e(name)}"' if name else ""
    if exact is not None:
        data += f' data-exact="{e(exact)}"'

    return (
        f'<div class="tile"{data}><div class="label">{e(label)}</div><div class="value">{e(value)}</div>'
        f'<div class="note">{e(note)}</div></div>'
    )


def money(text: str | None) -> str:
    """Exact decimal text shown to the cent when that loses nothing, else to 6 places (title keeps it exact)."""
    if text is None:
        return "–"
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    return f"${whole}.{frac.ljust(2, '0')[: max(2, min(len(frac), 6))]}"


def _pct(rate: str | None) -> str:
    return "–" if rate is None else f"{float(rate) * 100:.1f}%"


def _ms(value: Any) -> str:
    if value is None:
        return "–"
    if value == "inf":
        return "> 120 s"
    return f"≤ {value:g} ms" if value < 1000 else f"≤ {value / 1000:g} s"


def overview(data: Mapping[str, Any], params: Mapping[str, str], query: str) -> str:
    r, today, month = data["range"], data["today"], data["month"]
    budget_note = ""
    if data["budgets"]:
        top = max(data["budgets"], key=lambda b: float(b["share_spent"]))
        budget_note = f"{top['scope']} {top['scope_id']}: {float(top['share_spent']) * 100:.0f}% of {top['period']} budget"
    tiles = "".join(
        (
            _tile(
                "Spend today",
                money(today["billed_cost_usd"]),
                f"{today['count']} requests",
                "today",
                today["billed_cost_usd"],
            ),
            _tile(
                "Spend this month",
                money(month["billed_cost_usd"]),
                budget_note,
                "month",
                month["billed_cost_usd"],
            ),
            _tile("Requests", f"{r['count']:,}", f"{data['from']} to {data['to']}", "requests", r["count"]),
            _tile("Fresh", f"{r['fresh']:,}", "answered by the upstream", "fresh", r["fresh"]),
            _tile(
                "Exact cache",
                f"{r['exact_cache']:,}",
                f"hit rate {_pct(r['cache_hit_rate'])}",
                "exact_cache",
                r["exact_cache"],
            ),
            _tile(
                "Cache saved",
                money(r["savings_usd"]),
                "vs paying the upstream again",
                "savings",
                r["savings_usd"],
            ),
            _tile("Error rate", _pct(r["error_rate"]), f"{r['errors']:,} errors", "errors", r["errors"]),
            _tile(
                "Latency p50 / p95", f"{_ms(r['latency_p50_ms'])} / {_ms(r['latency_p95_ms'])}", "", "latency"
            ),
            _tile("Time to first token p95", _ms(r["ttft_p95_ms"]), "streams", "ttft"),
            _tile(
                "Estimated or unknown cost",
                f"{r['estimated'] + r['unknown_cost']:,}",
                f"{r['estimated']:,} estimated usage, {r['unknown_cost']:,} unknown price",
                "uncertain",
                r["estimated"] + r["unknown_cost"],
            ),
        )
    )
    exact = (
        f'<p class="exact">Exact range: {e(data["since_utc"])} to {e(data["until_utc"])} (UTC) · '
        f"billed $<span data-exact-billed>{e(r['billed_cost_usd'])}</span> · upstream ${e(r['upstream_cost_usd'])}</p>"
    )
    if not r["count"] and not today["count"] and not month["count"]:
        empty = (
            '<div class="empty"><h2>No receipts yet</h2><p>Point an OpenAI SDK at this proxy '
            '(<code>base_url="http://127.0.0.1:8787/v1"</code>) and send a request: every request gets a '
            "receipt, and it shows up here at once.</p></div>"
        )
        return range_form("/ui", params, data["tz"]) + empty
    charts = (
        '<section class="charts"><div class="chart"><h2>Daily spend by model</h2><div id="spend-chart"></div></div>'
        '<div class="chart"><h2>Fresh vs exact cache</h2><div id="mode-chart"></div></div></section>'
        f'<script type="application/json" id="chart-data">{_json_for_html(data["daily"])}</script>'
    )
    tables = "".join(_breakdown(by, rows, query) for by, rows in data["breakdowns"].items())
    return (
        range_form("/ui", params, data["tz"])
        + f'<section class="tiles">{tiles}</section>'
        + exact
        + charts
        + f'<section class="breakdowns">{tables}</section>'
        + _budgets(data["budgets"])
    )


def _json_for_html(obj: Any) -> str:
    # '<' never appears raw inside the script block, so no text can close it early.
    return orjson.dumps(obj).decode().replace("<", "\\u003c")


def _breakdown(by: str, rows: Sequence[Mapping[str, Any]], query: str) -> str:
    title = BREAKDOWN_TITLES[by]
    head = "".join(
        f'<th data-sort="{kind}">{label}</th>'
        for label, kind in (
            (title, "text"), ("Spend", "num"), ("Requests", "num"), ("Tokens", "num"), ("Cache hit rate", "num"),
            ("$ / request", "num"), ("Error rate", "num"),
        )
    )  # fmt: skip
    body = "".join(
        "<tr>"
        f"<td>{_group_link(by, row['group'], query)}</td>"
        f'<td data-value="{e(row["billed_cost_usd"])}" title="{e(row["billed_cost_usd"])}">{money(row["billed_cost_usd"])}</td>'
        f'<td data-value="{row["count"]}">{row["count"]:,}</td>'
        f'<td data-value="{row["tokens"]}">{row["tokens"]:,}</td>'
        f'<td data-value="{e(row["cache_hit_rate"] or -1)}">{_pct(row["cache_hit_rate"])}</td>'
        f'<td data-value="{e(row["usd_per_request"] or -1)}">{money(row["usd_per_request"])}</td>'
        f'<td data-value="{e(row["error_rate"] or -1)}">{_pct(row["error_rate"])}</td>'
        "</tr>"
        for row in rows
    )
    csv = f'<a class="csv" href="/ui/export.csv{query}" download>CSV</a>'
    empty = "" if rows else '<tr><td colspan=7 class="muted">Nothing in this range.</td></tr>'
    return (
        f'<div class="table-card"><h2>By {title.lower()} {csv}</h2>'
        f'<table class="sortable" data-breakdown="{by}"><thead><tr>{head}</tr></thead><tbody>{body}{empty}</tbody></table></div>'
    )


def _group_link(by: str, group: str | None, query: str) -> str:
    if group is None:
        return '<span class="muted">(none)</span>'
    if by in ("model", "project", "key"):
        sep = "&" if query else "?"
        return f'<a href="/ui/receipts{query}{sep}{urlencode({by: group})}">{e(group)}</a>'
    return e(group)


def _budgets(budgets: Sequence[Mapping[str, Any]]) -> str:
    if not budgets:
        return ""
    rows = "".join(
        f"<tr><td>{e(b['scope'])} {e(b['scope_id'])}</td><td>{e(b['period'])}</td>"
        f"<td>{e(b['spent'])} {e(b['currency'])}</td><td>{e(b['reserved'])} {e(b['currency'])}</td>"
        f"<td>{e(b['limit'])} {e(b['currency'])}</td><td>{e(b['reset_at'] or 'never')}</td></tr>"
        for b in budgets
    )
    return (
        '<section class="table-card"><h2>Budgets</h2><table><thead><tr><th>Budget</th><th>Period</th>'
        "<th>Spent</th><th>Reserved</th><th>Limit</th><th>Resets (UTC)</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


def receipts_list(
    result: Mapping[str, Any] | None,
    params: Mapping[str, str],
    tz: str,
    error: str | None,
    models: Iterable[str],
) -> str:
    options = "".join(f"<option value={e(m)}>" for m in sorted(models))
    modes = "".join(
        f"<option{' selected' if params.get('mode') == m else ''}>{e(m)}</option>"
        for m in ("", *SERVED_MODES)
    )
    statuses = "".join(
        f"<option{' selected' if params.get('status') == s else ''}>{e(s)}</option>"
        for s in ("", "2xx", "4xx", "5xx")
    )
    extra = (
        f'<label>Model <input name=model list=models value="{e(params.get("model", ""))}" size=16></label>'
        f"<datalist id=models>{options}</datalist>"
        f'<label>Project <input name=project value="{e(params.get("project", ""))}" size=10></label>'
        f'<label>Key <input name=key value="{e(params.get("key", ""))}" size=10></label>'
        f"<label>Mode <select name=mode>{modes}</select></label>"
        f"<label>Status <select name=status>{statuses}</select></label>"
        + (f'<input type=hidden name=limit value="{e(params["limit"])}">' if params.get("limit") else "")
    )
    form = range_form("/ui/receipts", params, tz, extra)
    if error is not None:
        return form + problem(error)
    assert result is not None
    rows = "".join(
        f'<tr><td><a href="/ui/receipts/{e(r["receipt_id"])}">{e(r["receipt_id"])}</a></td>'
        f"<td>{e(r['created_utc'])}</td><td>{e(r['model'])}</td><td>{e(r['project'])}</td>"
        f"<td>{e(r['served_mode'])}</td><td>{e(r['status'])}</td>"
        f'<td title="{e(r["billed_cost_usd"])}">{money(r["billed_cost_usd"])}</td>'
        f"<td>{e(r['prompt_tokens'])} / {e(r['completion_tokens'])}</td></tr>"
        for r in result["data"]
    )
    if not rows:
        rows = '<tr><td colspan=8 class="muted">No receipts match these filters.</td></tr>'
    more = ""
    if result["next_cursor"]:
        q = {k: v for k, v in params.items() if v and k != "cursor"}
        more = f'<a class="more" rel="next" href="/ui/receipts?{e(urlencode({**q, "cursor": result["next_cursor"]}))}">Older receipts →</a>'
    return (
        form
        + '<div class="table-card"><table class="receipts"><thead><tr><th>Receipt</th><th>Created (UTC)</th>'
        "<th>Model</th><th>Project</th><th>Served</th><th>Status</th><th>Billed</th><th>Tokens in / out</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>{more}</div>"
    )


def receipt(r: Mapping[str, Any]) -> str:
    fields = "".join(
        f"<tr><th>{e(name)}</th><td>{_field(name, value)}</td></tr>"
        for name, value in r.items()
        if name != "attempts"
    )
    attempts = "".join(
        "<tr>"
        + "".join(f"<td>{e(a.get(k))}</td>" for k in ("provider", "model", "status", "error_code", "ms"))
        + "</tr>"
        for a in r.get("attempts") or []
        if isinstance(a, Mapping)
    )
    link = ""
    if r.get("reused_receipt_id"):
        link = (
            f'<p class="replay">Replayed from the exact cache: <a id="fresh-link" href="/ui/receipts/'
            f'{e(r["reused_receipt_id"])}">fresh receipt {e(r["reused_receipt_id"])}</a></p>'
        )
    return (
        f'<h1 class="receipt-id">{e(r["receipt_id"])}</h1>{link}'
        f'<div class="table-card"><table class="fields"><tbody>{fields}</tbody></table></div>'
        '<div class="table-card"><h2>Attempts</h2><table><thead><tr><th>Provider</th><th>Model</th><th>Status</th>'
        f"<th>Error</th><th>ms</th></tr></thead><tbody>{attempts or '<tr><td colspan=5 class=muted>none</td></tr>'}"
        "</tbody></table></div>"
    )


def _field(name: str, value: Any) -> str:
    if isinstance(value, list | dict):
        return f"<code>{e(orjson.dumps(value).decode())}</code>"
    if name.endswith("receipt_id") and value and name != "receipt_id":
        return f'<a href="/ui/receipts/{e(value)}">{e(value)}</a>'
    return e(value)


def login(error: str | None, next_url: str) -> str:
    notice = problem(error) if error else ""
    return (
        '<div class="login"><h1>Sign in</h1><p>This proxy has keys. Sign in with the admin key to see everything, '
        "or with a project key to see that key's own requests.</p>"
        f'{notice}<form method="post" action="/ui/login"><input type=hidden name=next value="{e(next_url)}">'
        "<label>API key <input type=password name=key autocomplete=off required autofocus></label>"
        "<button type=submit>Sign in</button></form></div>"
    )
