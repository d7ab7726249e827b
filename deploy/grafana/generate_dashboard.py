#!/usr/bin/env python3
"""Generate ``dashboards/ingestion.json``, the Grafana dashboard of the ingestion engine.

The dashboard is code: edit this file, run ``python deploy/grafana/generate_dashboard.py``,
commit both. Tests check that the JSON is up to date, that it type-checks against
``@grafana/schema`` (tsc), and that every panel's query returns data from a real Prometheus
scraping the engine's ``/metrics``. Metric names: engine/observe/metrics/families.py.

Stdlib only, so it runs with any Python 3.11.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards" / "ingestion.json"
UID = "ingestion-engine"
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'job="ingestion", instance=~"$instance"'
RI = "$__rate_interval"

GREEN, YELLOW, ORANGE, RED = "green", "yellow", "orange", "red"


def sel(metric: str, extra: str = "") -> str:
    """``metric{job, instance[, extra]}``."""
    return f"{metric}{{{SEL}{', ' + extra if extra else ''}}}"


def rate(metric: str, extra: str = "") -> str:
    return f"rate({sel(metric, extra)}[{RI}])"


def quantile(p: float, metric: str, extra: str = "") -> str:
    return f"histogram_quantile({p}, sum by (le) ({rate(metric, extra)}))"


Json = dict[str, Any]


def q(
    expr: str,
    legend: str = "__auto",
    ref: str = "A",
    *,
    instant: bool = False,
    fmt: str = "time_series",
) -> Json:
    t: Json = {
        "datasource": DS,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend,
        "range": not instant,
        "instant": instant,
        "refId": ref,
    }
    if fmt != "time_series":
        t["format"] = fmt
    return t


def thresholds(*steps: tuple[float | None, str]) -> Json:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


def legend(placement: str = "bottom", calcs: list[str] | None = None) -> Json:
    return {
        "calcs": calcs or [],
        "displayMode": "table" if calcs else "list",
        "placement": placement,
        "showLegend": True,
    }


TOOLTIP = {"mode": "multi", "sort": "desc"}


class Layout:
    def __init__(self) -> None:
        self.panels: list[Json] = []
        self.next_id = 1
        self.y = 0

    def _add(self, panel: Json) -> Json:
        panel["id"] = self.next_id
        self.next_id += 1
        self.panels.append(panel)
        return panel

    def row(self, title: str) -> None:
        self._add(
            {
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                "panels": [],
            }
        )
        self.y += 1

    def line(self, height: int, *panels: tuple[int, Json]) -> None:
        x = 0
        for width, p in panels:
            p["gridPos"] = {"h": height, "w": width, "x": x, "y": self.y}
            self._add(p)
            x += width
        self.y += height


def base(
    kind: str,
    title: str,
    description: str,
    targets: list[Json],
    defaults: Json,
    options: Json,
    overrides: list[Json] | None = None,
) -> Json:
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": options,
    }


def timeseries(
    title: str,
    description: str,
    targets: list[Json],
    unit: str,
    *,
    stack: bool = False,
    min_: float | None = 0,
    max_: float | None = None,
    fill: int = 10,
    draw: str = "line",
    overrides: list[Json] | None = None,
    calcs: list[str] | None = None,
) -> Json:
    custom: Json = {
        "drawStyle": draw,
        "lineWidth": 1,
        "fillOpacity": fill,
        "gradientMode": "none",
        "showPoints": "never",
        "spanNulls": False,
        "lineInterpolation": "linear",
        "axisPlacement": "auto",
        "axisBorderShow": False,
        "scaleDistribution": {"type": "linear"},
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        "thresholdsStyle": {"mode": "off"},
        "hideFrom": {"legend": False, "tooltip": False, "viz": False},
    }
    defaults: Json = {
        "unit": unit,
        "color": {"mode": "palette-classic"},
        "custom": custom,
        "thresholds": thresholds((None, GREEN)),
        "mappings": [],
    }
    if min_ is not None:
        defaults["min"] = min_
    if max_ is not None:
        defaults["max"] = max_
    options = {"legend": legend(calcs=calcs), "tooltip": TOOLTIP}
    return base("timeseries", title, description, targets, defaults, options, overrides)


def stat(
    title: str,
    description: str,
    targets: list[Json],
    unit: str,
    steps: Json,
    *,
    mappings: list[Json] | None = None,
    calc: str = "lastNotNull",
    color_mode: str = "background",
) -> Json:
    defaults: Json = {
        "unit": unit,
        "color": {"mode": "thresholds"},
        "thresholds": steps,
        "mappings": mappings or [],
    }
    options = {
        "reduceOptions": {"calcs": [calc], "fields": "", "values": False},
        "orientation": "auto",
        "textMode": "value",
        "colorMode": color_mode,
        "graphMode": "none",
        "justifyMode": "center",
        "wideLayout": True,
        "showPercentChange": False,
        "percentChangeColorMode": "standard",
    }
    return base("stat", title, description, targets, defaults, options)


def heatmap(title: str, description: str, targets: list[Json]) -> Json:
    options = {
        "calculate": False,
        "cellGap": 1,
        "color": {
            "mode": "scheme",
            "scheme": "RdYlGn",
            "fill": "dark-orange",
            "scale": "exponential",
            "exponent": 0.5,
            "steps": 64,
            "reverse": True,
        },
        "exemplars": {"color": "rgba(255,0,255,0.7)"},
        "filterValues": {"le": 1e-9},
        "legend": {"show": True},
        "rowsFrame": {"layout": "le"},
        "showValue": "never",
        "tooltip": {"mode": "single", "yHistogram": True, "showColorScale": True},
        "yAxis": {"axisPlacement": "left", "unit": "s", "reverse": False},
    }
    defaults: Json = {
        "custom": {
            "hideFrom": {"legend": False, "tooltip": False, "viz": False},
            "scaleDistribution": {"type": "linear"},
        }
    }
    return base("heatmap", title, description, targets, defaults, options)


def status_history(
    title: str, description: str, targets: list[Json], unit: str, steps: Json
) -> Json:
    defaults: Json = {
        "unit": unit,
        "min": 0,
        "max": 1,
        "color": {"mode": "thresholds"},
        "thresholds": steps,
        "mappings": [],
        "custom": {
            "fillOpacity": 80,
            "lineWidth": 0,
            "hideFrom": {"legend": False, "tooltip": False, "viz": False},
        },
    }
    options = {
        "rowHeight": 0.9,
        "colWidth": 0.9,
        "showValue": "never",
        "legend": {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "single", "sort": "none"},
    }
    return base("status-history", title, description, targets, defaults, options)


def table(title: str, description: str, targets: list[Json]) -> Json:
    defaults: Json = {
        "custom": {
            "align": "auto",
            "cellOptions": {"type": "auto"},
            "filterable": False,
            "inspect": False,
        },
        "color": {"mode": "thresholds"},
        "thresholds": thresholds((None, GREEN)),
        "mappings": [],
    }
    overrides = [
        {
            "matcher": {"id": "byName", "options": "Missed cycles"},
            "properties": [
                {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                {"id": "color", "value": {"mode": "continuous-YlRd"}},
            ],
        }
    ]
    options = {
        "showHeader": True,
        "frameIndex": 0,
        "cellHeight": "sm",
        "sortBy": [{"displayName": "Missed cycles", "desc": True}],
    }
    panel = base("table", title, description, targets, defaults, options, overrides)
    panel["transformations"] = [
        {
            "id": "organize",
            "options": {
                "excludeByName": {"Time": True, "__name__": True},
                "indexByName": {"symbol": 0, "sector": 1, "Value": 2},
                "renameByName": {"symbol": "Symbol", "sector": "Sector", "Value": "Missed cycles"},
            },
        }
    ]
    return panel


BREAKER_MAPPINGS = [
    {
        "type": "value",
        "options": {
            "0": {"text": "closed", "color": GREEN, "index": 0},
            "1": {"text": "half-open", "color": ORANGE, "index": 1},
            "2": {"text": "open", "color": RED, "index": 2},
        },
    }
]


def panels() -> list[Json]:
    L = Layout()
    L.row("Overview")
    L.line(
        5,
        (
            5,
            stat(
                "Symbols ingested / min",
                "Valid quotes per minute (unchanged ones included).",
                [q(f"sum({rate('ingestion_quotes_valid_total')}) * 60")],
                "short",
                thresholds((None, RED), (1, GREEN)),
                color_mode="value",
            ),
        ),
        (
            4,
            stat(
                "Breaker",
                "Yahoo circuit breaker (open: requests paused).",
                [q(f"max({sel('ingestion_breaker_state')})")],
                "none",
                thresholds((None, GREEN), (1, ORANGE), (2, RED)),
                mappings=BREAKER_MAPPINGS,
            ),
        ),
        (
            5,
            stat(
                "Rate-limit headroom",
                "Share of the per-cycle request budget left after a full cycle.",
                [q(f"min({sel('ingestion_rate_limit_headroom_ratio')})")],
                "percentunit",
                thresholds((None, RED), (0.1, ORANGE), (0.25, GREEN)),
            ),
        ),
        (
            5,
            stat(
                "Since last good cycle",
                "Time since the last cycle without failures.",
                [q(f"time() - max({sel('ingestion_last_successful_cycle_timestamp_seconds')})")],
                "s",
                thresholds((None, GREEN), (60, ORANGE), (120, RED)),
            ),
        ),
        (
            5,
            stat(
                "Symbols missing",
                "Share of the universe without a valid quote in the last cycle.",
                [q(f"max({sel('ingestion_quality_missing_ratio')})")],
                "percentunit",
                thresholds((None, GREEN), (0.02, ORANGE), (0.1, RED)),
            ),
        ),
    )
    L.line(
        8,
        (
            12,
            timeseries(
                "Symbols ingested per minute",
                "Symbols requested, answered and valid, per minute.",
                [
                    q(f"sum({rate('ingestion_quotes_valid_total')}) * 60", "valid", "A"),
                    q(f"sum({rate('ingestion_symbols_fetched_total')}) * 60", "answered", "B"),
                    q(f"sum({rate('ingestion_symbols_requested_total')}) * 60", "requested", "C"),
                    q(f"sum({rate('ingestion_symbols_failed_total')}) * 60", "failed", "D"),
                ],
                "short",
                fill=0,
            ),
        ),
        (
            12,
            timeseries(
                "Error rate",
                "Batch requests that failed after retries, by error kind "
                "(alert: above 5% for 5 minutes).",
                [
                    q(
                        f"sum by (error) ({rate('ingestion_fetch_failures_total')})"
                        f" / ignoring(error) group_left"
                        f" sum({rate('ingestion_fetch_requests_total')})",
                        "{{error}}",
                        "A",
                    ),
                    q(
                        f"sum({rate('ingestion_fetch_failures_total')})"
                        f" / sum({rate('ingestion_fetch_requests_total')})",
                        "all",
                        "B",
                    ),
                ],
                "percentunit",
                stack=False,
                fill=20,
            ),
        ),
    )
    L.row("Yahoo")
    L.line(
        8,
        (
            8,
            timeseries(
                "Fetch latency",
                "One batch request, retries included (successful requests).",
                [
                    q(
                        quantile(p, "ingestion_fetch_latency_seconds_bucket", 'outcome="ok"'),
                        f"p{int(p * 100)}",
                        ref,
                    )
                    for p, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))
                ],
                "s",
                fill=0,
            ),
        ),
        (
            8,
            timeseries(
                "Latency per symbol",
                "Batch latency divided by the symbols in the batch.",
                [
                    q(
                        quantile(p, "ingestion_fetch_symbol_latency_seconds_bucket"),
                        f"p{int(p * 100)}",
                        ref,
                    )
                    for p, ref in ((0.5, "A"), (0.95, "B"))
                ],
                "s",
                fill=0,
            ),
        ),
        (
            8,
            timeseries(
                "Rate limit",
                "Allowed request rate, its ceiling, and 429 answers from Yahoo.",
                [
                    q(
                        f"max({sel('ingestion_rate_limit_requests_per_second')})",
                        "allowed req/s",
                        "A",
                    ),
                    q(
                        f"max({sel('ingestion_rate_limit_max_requests_per_second')})",
                        "ceiling",
                        "B",
                    ),
                    q(
                        f"sum({rate('ingestion_rate_limit_throttles_total')}) * 60",
                        "429 / min",
                        "C",
                    ),
                ],
                "reqps",
                fill=0,
            ),
        ),
    )
    L.line(
        6,
        (
            12,
            timeseries(
                "Breaker state",
                "0 closed, 1 half-open, 2 open.",
                [q(f"max by (instance) ({sel('ingestion_breaker_state')})", "{{instance}}")],
                "none",
                min_=0,
                max_=2,
                draw="line",
                fill=30,
            ),
        ),
        (
            12,
            timeseries(
                "Rate-limit headroom",
                "Share of the per-cycle request budget left after a full cycle "
                "(0: the limiter cannot cover a cycle; some symbols wait for the next).",
                [
                    q(
                        f"min by (instance) ({sel('ingestion_rate_limit_headroom_ratio')})",
                        "{{instance}}",
                    )
                ],
                "percentunit",
                min_=0,
                max_=1,
            ),
        ),
    )
    L.row("Cycles")
    L.line(
        8,
        (
            8,
            timeseries(
                "Cycle duration",
                "Whole cycle (fetch to published) and fetch phase; overruns are "
                "scheduler ticks skipped.",
                [
                    q(quantile(0.5, "ingestion_cycle_duration_seconds_bucket"), "p50", "A"),
                    q(quantile(0.95, "ingestion_cycle_duration_seconds_bucket"), "p95", "B"),
                    q(
                        quantile(0.95, "ingestion_cycle_fetch_duration_seconds_bucket"),
                        "fetch p95",
                        "C",
                    ),
                    q(
                        f"sum(increase({sel('ingestion_cycle_overruns_total')}[{RI}]))",
                        "overruns",
                        "D",
                    ),
                ],
                "s",
                fill=0,
            ),
        ),
        (
            8,
            timeseries(
                "Quotes rejected by reason",
                "Validation rejections per minute (sent to the DLQ).",
                [
                    q(
                        f"sum by (reason) ({rate('ingestion_quotes_rejected_total')}) * 60",
                        "{{reason}}",
                    )
                ],
                "short",
                stack=True,
                fill=40,
            ),
        ),
        (
            8,
            timeseries(
                "Messages",
                "JetStream messages per minute by outcome.",
                [q(f"sum by (outcome) ({rate('ingestion_messages_total')}) * 60", "{{outcome}}")],
                "short",
                fill=0,
            ),
        ),
    )
    L.row("Data quality")
    L.line(
        9,
        (
            12,
            heatmap(
                "Data freshness",
                "Symbols by age of their last quote (now - market time), per "
                "scrape; green is fresh.",
                [
                    q(
                        f"sum by (le) ({sel('ingestion_quality_symbol_age_seconds_bucket')})",
                        "{{le}}",
                        fmt="heatmap",
                    )
                ],
            ),
        ),
        (
            12,
            status_history(
                "Missing symbols by sector",
                "Share of each sector's symbols without a valid quote "
                "in the cycle (freshness heatmap by sector).",
                [
                    q(
                        f"max by (sector) ({sel('ingestion_quality_sector_missing')})"
                        f" / max by (sector) ({sel('ingestion_quality_sector_symbols')})",
                        "{{sector}}",
                    )
                ],
                "percentunit",
                thresholds((None, GREEN), (0.02, YELLOW), (0.1, ORANGE), (0.25, RED)),
            ),
        ),
    )
    L.line(
        9,
        (
            12,
            table(
                "Top 10 failing symbols",
                "Cycles without a valid quote within the quality window "
                "(the last 60 cycles); /status on the engine shows the same with streaks.",
                [
                    q(
                        "topk(10, max by (symbol, sector) ("
                        f"{sel('ingestion_quality_failing_symbol_missed_cycles')}))",
                        "",
                        instant=True,
                        fmt="table",
                    )
                ],
            ),
        ),
        (
            12,
            timeseries(
                "Missing and stale symbols",
                "Symbols without a valid quote this cycle, and stale "
                "(> 5 min during regular hours).",
                [
                    q(f"max({sel('ingestion_quality_symbols_missing')})", "missing", "A"),
                    q(f"max({sel('ingestion_quality_symbols_stale')})", "stale", "B"),
                ],
                "short",
                fill=0,
            ),
        ),
    )
    L.row("Pipeline")
    L.line(
        8,
        (
            8,
            timeseries(
                "DLQ and outbox depth",
                "Messages in the dead-letter stream and in the outbox.",
                [
                    q(f"max({sel('ingestion_dlq_depth_messages')})", "DLQ", "A"),
                    q(f"max({sel('ingestion_outbox_depth_messages')})", "outbox", "B"),
                ],
                "short",
                fill=0,
            ),
        ),
        (
            8,
            timeseries(
                "Ring occupancy",
                "Share of each worker's shared-memory ring not yet published.",
                [
                    q(
                        f"max by (worker) ({sel('ingestion_ring_occupancy_records')})"
                        f" / max by (worker) ({sel('ingestion_ring_capacity_records')})",
                        "worker {{worker}}",
                    )
                ],
                "percentunit",
                max_=1,
            ),
        ),
        (
            8,
            timeseries(
                "PostgreSQL",
                "Rows per minute by outcome; p95 time to make a batch durable.",
                [
                    q(
                        f"sum by (outcome) ({rate('ingestion_store_rows_total')}) * 60",
                        "{{outcome}}",
                        "A",
                    ),
                    q(quantile(0.95, "ingestion_store_flush_seconds_bucket"), "flush p95 (s)", "B"),
                ],
                "short",
                fill=0,
                overrides=[
                    {
                        "matcher": {"id": "byName", "options": "flush p95 (s)"},
                        "properties": [
                            {"id": "unit", "value": "s"},
                            {"id": "custom.axisPlacement", "value": "right"},
                        ],
                    }
                ],
            ),
        ),
    )
    L.line(
        6,
        (
            8,
            timeseries(
                "Redis",
                "Latest-quote writes per minute by outcome, and outages.",
                [
                    q(
                        f"sum by (outcome) ({rate('ingestion_cache_writes_total')}) * 60",
                        "{{outcome}}",
                        "A",
                    ),
                    q(
                        f"sum(increase({sel('ingestion_cache_outages_total')}[{RI}]))",
                        "outages",
                        "B",
                    ),
                ],
                "short",
                fill=0,
            ),
        ),
        (
            8,
            timeseries(
                "Earnings sync",
                "Earnings-calendar syncs by outcome (per hour).",
                [
                    q(
                        f"sum by (outcome) (increase({sel('ingestion_earnings_syncs_total')}[1h]))",
                        "{{outcome}}",
                    )
                ],
                "short",
                draw="bars",
                fill=60,
            ),
        ),
        (
            8,
            stat(
                "Dependencies",
                "Last readiness check (/readyz) of each dependency.",
                [q(f"max by (dependency) ({sel('ingestion_dependency_up')})", "{{dependency}}")],
                "none",
                thresholds((None, RED), (1, GREEN)),
                mappings=[
                    {
                        "type": "value",
                        "options": {
                            "0": {"text": "down", "color": RED, "index": 0},
                            "1": {"text": "up", "color": GREEN, "index": 1},
                        },
                    }
                ],
            ),
        ),
    )
    return L.panels


def dashboard() -> Json:
    return {
        "uid": UID,
        "title": "Ingestion engine",
        "description": "Yahoo quotes -> NATS JetStream, PostgreSQL, Redis: flow, errors, "
        "latency, freshness.",
        "tags": ["ingestion", "market-data"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "10s",
        "schemaVersion": 39,
        "version": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "links": [],
        "time": {"from": "now-3h", "to": "now"},
        "timepicker": {},
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "hide": 0,
                    "includeAll": False,
                    "multi": False,
                    "options": [],
                    "refresh": 1,
                    "regex": "",
                    "skipUrlSync": False,
                },
                {
                    "name": "instance",
                    "label": "Engine",
                    "type": "query",
                    "datasource": DS,
                    "query": {
                        "query": 'label_values(ingestion_build_info{job="ingestion"}, instance)',
                        "refId": "PrometheusVariableQueryEditor-VariableQuery",
                    },
                    "hide": 0,
                    "includeAll": True,
                    "allValue": ".*",
                    "multi": True,
                    "options": [],
                    "refresh": 2,
                    "regex": "",
                    "sort": 1,
                    "skipUrlSync": False,
                },
            ]
        },
        "panels": panels(),
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if argv[1:] == ["--check"]:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is out of date: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
