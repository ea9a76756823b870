"""`wa-media status`: counts by state, what was archived lately, queue depths, the last sweep
and the media nearest their deadline."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

import click

from wa_media.cli.common import EXIT_UNAVAILABLE, state_store, when
from wa_media.cli.shown import shown
from wa_media.core.errors import RedisUnavailable
from wa_media.stores.redis_client import failure_name
from wa_media.stores.snapshot import ArchivedCounts, Snapshot, archived_counts, read_snapshot

__all__ = ["status"]


def _span(seconds: float) -> str:
    """`3d 4h`, `2h 5m`, `45s`; negative spans read `overdue`."""
    if seconds < 0:
        return "overdue " + _span(-seconds)
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def _last_sweep(snapshot: Snapshot) -> str:
    if snapshot.sweep_last is None:
        return "none in the last day"
    return f"{_span(max(0.0, snapshot.taken_at - snapshot.sweep_last))} ago"


def render(snapshot: Snapshot, archived: ArchivedCounts) -> str:
    """The snapshot and the archived counts as a short report for a terminal."""
    states = ", ".join(
        f"{shown(name)} {count}" for name, count in sorted(snapshot.by_state.items())
    )
    lines = [
        f"archived last hour  {archived.last_hour:>8}",
        f"archived last day   {archived.last_day:>8}",
        f"media pending       {snapshot.pending:>8}" + (f"  ({states})" if states else ""),
        f"media failed        {snapshot.failed:>8}",
        *(f"queue {shown(name):<13} {depth:>8}" for name, depth in snapshot.queues.items()),
        f"paused credentials  {snapshot.paused_credentials:>8}",
        f"last sweep          {_last_sweep(snapshot)}",
    ]
    oldest = snapshot.oldest
    if oldest is None:
        lines.append("oldest pending             -")
        return "\n".join(lines)
    lines.append(
        f"oldest pending      {shown(oldest.name)}  sent {when(str(oldest.timestamp))}, "
        f"deadline in {_span(oldest.deadline - snapshot.taken_at)}"
    )
    lines.append("")
    lines.append("nearest their 7-day deadline:")
    lines.append(f"  {'media id':<40} {'state':<10} {'sent':<20} deadline in")
    for item in snapshot.nearest:
        lines.append(
            f"  {shown(item.name):<40} {shown(item.state):<10} {when(str(item.timestamp)):<20} "
            f"{_span(item.deadline - snapshot.taken_at)}"
        )
    if snapshot.sampled < snapshot.pending:
        lines.append(f"(from the first {snapshot.sampled} of {snapshot.pending} pending records)")
    return "\n".join(lines)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the snapshot as JSON.")
@click.option("--nearest", default=10, show_default=True, help="List this many pending media.")
def status(as_json: bool, nearest: int) -> None:
    """Media archived in the last hour and day, counts by state, queue depths, when the last
    sweep completed, and the pending media nearest their 7-day deadline."""
    store, _ = state_store()
    try:
        snapshot = read_snapshot(store.redis, nearest=nearest)
        archived = archived_counts(store.redis, now=snapshot.taken_at)
    except RedisUnavailable as exc:
        click.echo(f"error: Redis is unavailable ({failure_name(exc)})", err=True)
        sys.exit(EXIT_UNAVAILABLE)
    if as_json:
        document = asdict(snapshot)
        document["oldest"] = asdict(snapshot.oldest) if snapshot.oldest else None
        document["archived"] = {"last_hour": archived.last_hour, "last_day": archived.last_day}
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo(render(snapshot, archived))
