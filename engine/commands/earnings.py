"""``ingestion-agent earnings sync [--date YYYY-MM-DD]``: one earnings sync now, a summary
printed."""

from __future__ import annotations

import datetime as dt
import sys
from typing import TextIO

from engine.config import Config, EarningsSettings
from engine.earnings.models import Trigger, utcnow
from engine.earnings.report import SyncReport
from engine.earnings.schedule import ny_date
from engine.earnings.services import open_services
from engine.errors import IngestionError
from engine.source.guard import Guard


def format_report(r: SyncReport) -> str:
    window = f"{r.fetch_start} .. {r.fetch_end}" if r.fetch_start else "-"
    lines = [
        f"earnings sync {r.sync_date} ({r.trigger}): {r.status.upper()} in {r.duration_s:.1f} s",
        f"  source        {r.source or '-'}{' (fallback)' if r.fallback_used else ''}",
        f"  window        {window}",
        f"  calendar      {r.fetched} events, {r.rejected} rejected, {r.warnings} warnings, "
        f"{r.pages} pages, {r.requests} requests",
        f"  table         {r.inserted} inserted, {r.updated} updated, {r.unchanged} unchanged, "
        f"{r.rescheduled} rescheduled",
    ]
    if r.current:
        lines += [
            f"  flags         {r.flags_set} set, {r.flags_cleared} cleared",
            f"  published     {r.announced_reporting} reporting today, {r.announced_eps} EPS "
            f"reported ({r.publish_duplicates} duplicates dropped)",
            f"  fundamentals  {r.fundamentals_written} written, {r.fundamentals_unavailable} "
            f"without data, {r.fundamentals_skipped} fresh, {len(r.fundamentals_failed)} failed",
        ]
    else:
        lines.append("  (not today: stored only; no flags, events or fundamentals)")
    lines += [f"  rejected row  {i.symbol or '?'}: {i.reason} {i.detail}" for i in r.rejections]
    if r.error:
        lines.append(f"  error         {r.error_kind}: {r.error}")
    return "\n".join(lines) + "\n"


async def sync_command(
    config: Config,
    date: dt.date | None,
    out: TextIO,
    *,
    err: TextIO | None = None,
    settings: EarningsSettings | None = None,
    guard: Guard | None = None,
) -> int:
    """``ingestion-agent earnings sync [--date YYYY-MM-DD]``: one sync now, a summary printed.

    Exit status: 0 complete, 1 failed (the summary says why).
    """
    err = err or sys.stderr
    settings = settings or config.earnings
    now = utcnow()
    day = date or ny_date(now)
    try:
        async with open_services(config, settings, guard=guard) as svc:
            report = await svc.sync.run(day, trigger=Trigger.MANUAL, covers=now)
    except IngestionError as exc:
        print(f"earnings sync failed: {type(exc).__name__}: {exc}", file=err)
        return 1
    out.write(format_report(report))
    return 0 if report.ok else 1
