"""The ``/status`` page: small, self-contained HTML (no script; refreshes itself every 10 s)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Final

from engine.observe.http.status import STATUS_CYCLES, CycleStatus, StatusView, error_rates
from engine.observe.quality import Level, QualitySnapshot

REFRESH_S: Final = 10


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100.0 * x:.1f}%"


def _age(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "never"
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


_CSS: Final = """
body{font:14px/1.4 system-ui,sans-serif;margin:16px;color:#1d2330;background:#f6f7f9}
h1{font-size:20px;margin:0 0 12px}h2{font-size:16px;margin:20px 0 8px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:8px 12px;min-width:150px}
.card b{display:block;font-size:18px}.card small{color:#667}
.badge{padding:2px 8px;border-radius:10px;color:#fff;font-weight:600}
.closed{background:#2e7d32}.half_open{background:#ef8f00}.open{background:#c62828}
table{border-collapse:collapse;background:#fff}
td,th{border:1px solid #dde1e7;padding:3px 8px;text-align:right}
th{background:#eef0f3;text-align:center}td.l{text-align:left}tr.bad td{background:#fdecea}
.sector{margin:6px 0}.sector h3{font-size:13px;margin:6px 0 2px}
.sector h3 small{font-weight:400;color:#667}
.cells{display:flex;flex-wrap:wrap;gap:1px}
.cells i{width:7px;height:7px;display:block}
.l0{background:#2e7d32}.l1{background:#9ccc65}.l2{background:#ef8f00}.l3{background:#c62828}
.l4{background:#9e9e9e}
.legend i{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
"""

_LEVEL_TEXT: Final = {
    Level.FRESH: "fresh",
    Level.LAGGING: "lagging (> 1 min, regular hours)",
    Level.MISSING: "missing this cycle",
    Level.STALE: "stale (> 5 min, regular hours)",
    Level.NEVER: "never seen",
}


def _cards(v: StatusView) -> str:
    req_rate, sym_rate = error_rates(v.cycles)
    last = v.cycles[-1] if v.cycles else None
    items = [
        ("Breaker", f'<span class="badge {v.breaker}">{v.breaker.replace("_", "-")}</span>'),
        (
            "Rate limit",
            f"{v.rate.current_rps:.1f} / {v.rate.max_rps:.1f} req/s" if v.rate else "–",
        ),
        ("Headroom", _pct(v.rate.headroom_ratio) if v.rate else "–"),
        ("Request error rate", _pct(req_rate)),
        ("Symbols lost", _pct(sym_rate)),
        ("Last cycle", f"#{last.cycle} ({last.seconds:.2f}s)" if last else "none yet"),
    ]
    q = v.quality
    if q is not None:
        items += [
            ("Missing", f"{q.missing} ({_pct(q.missing_ratio)})"),
            ("Stale", f"{q.stale}" + ("" if q.regular_hours else " (market closed)")),
        ]
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><small>{html.escape(k)}</small><b>{val}</b></div>'
            for k, val in items
        )
        + "</div>"
    )


def _table(table_id: str, headers: Sequence[str], rows: Sequence[str], empty: str) -> str:
    """A table with one header row; ``rows`` are ``<tr>`` elements, ``empty`` the text shown
    across every column when there are none."""
    head = "<tr>" + "".join(f"<th>{h}</th>" for h in headers) + "</tr>"
    body = "".join(rows) or f'<tr><td class="l" colspan="{len(headers)}">{empty}</td></tr>'
    return f'<table id="{table_id}">{head}{body}</table>'


_CYCLE_HEADERS: Final = "cycle ok requested valid rejected missing failed published dedup seconds"
_FAILING_HEADERS: Final = ("#", "symbol", "sector", "missed cycles", "current streak", "last quote")


def _cycle_row(c: CycleStatus) -> str:
    cls = "" if c.ok else ' class="bad"'
    return (
        f"<tr{cls}><td>{c.cycle}</td><td>{'yes' if c.ok else 'no'}</td>"
        f"<td>{c.fetch.requested}</td><td>{c.fetch.valid}</td>"
        f"<td>{sum(c.fetch.rejected.values())}</td><td>{c.fetch.missing}</td>"
        f"<td>{c.fetch.failed}</td><td>{c.publish.published}</td>"
        f"<td>{c.publish.deduplicated + c.fetch.unchanged}</td><td>{c.seconds:.2f}</td></tr>"
    )


def _cycles_table(cycles: Sequence[CycleStatus]) -> str:
    rows = [_cycle_row(c) for c in reversed(cycles[-STATUS_CYCLES:])]
    return _table("cycles", _CYCLE_HEADERS.split(), rows, "no cycle completed yet")


def _failing_table(q: QualitySnapshot | None) -> str:
    rows = (
        []
        if q is None
        else [
            f'<tr><td>{i}</td><td class="l">{html.escape(f.symbol)}</td>'
            f'<td class="l">{html.escape(f.sector)}</td><td>{f.missed} / {q.window}</td>'
            f"<td>{f.streak}</td><td>{_age(f.age_s)}</td></tr>"
            for i, f in enumerate(q.top_failing, start=1)
        ]
    )
    return _table("failing", _FAILING_HEADERS, rows, "no failing symbol")


def _heatmap(q: QualitySnapshot | None) -> str:
    if q is None:
        return '<div id="heatmap"><p>no cycle completed yet</p></div>'
    legend = (
        '<p class="legend">'
        + "".join(f'<i class="l{int(lv)}"></i>{html.escape(t)}' for lv, t in _LEVEL_TEXT.items())
        + "</p>"
    )
    parts = [f'<div id="heatmap">{legend}']
    for sec, cells in q.heatmap():
        name = html.escape(sec.name)
        parts.append(
            f'<div class="sector" data-sector="{name}"><h3>{name} <small>{sec.symbols} symbols'
            f' · {sec.missing} missing · {sec.stale} stale</small></h3><div class="cells">'
        )
        parts.append(
            "".join(
                f'<i class="l{int(c.level)}" title="{html.escape(c.symbol)} {_age(c.age_s)}"></i>'
                for c in cells
            )
        )
        parts.append("</div></div>")
    parts.append("</div>")
    return "".join(parts)


def render_status(v: StatusView) -> str:
    """The ``/status`` page (pure: everything comes from ``v``)."""
    up = _age(v.now - v.started_at)
    q = v.quality
    when = (
        f"quality as of cycle {q.cycle}, {_age(v.now - q.at)} ago, window {q.window} cycles"
        if q
        else "no quality data yet"
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{REFRESH_S}">'
        "<title>Ingestion status</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>Ingestion engine <small>v{html.escape(v.version)} · up {up}</small></h1>"
        f"{_cards(v)}"
        f"<h2>Last cycles</h2>{_cycles_table(v.cycles)}"
        f"<h2>Top 10 failing symbols</h2>{_failing_table(q)}"
        f"<h2>Freshness by sector</h2><p><small>{html.escape(when)}</small></p>{_heatmap(q)}"
        "</body></html>"
    )
