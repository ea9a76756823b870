"""`wa-media status`: counts by state, queue depths and the media nearest their deadline."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

import click
from redis.exceptions import RedisError

from worker.cli.common import EXIT_UNAVAILABLE, state_store, when
from worker.cli.shown import shown
from worker.stats import Snapshot, read_snapshot

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


def render(snapshot: Snapshot) -> str:
    """The snapshot as a short report for a terminal."""
    states = ", ".join(
        f"{shown(name)} {count}" for name, count in sorted(snapshot.by_state.items())
    )
    lines = [
        f"media pending       {snapshot.pending:>8}" + (f"  ({states})" if states else ""),
        f"media failed        {snapshot.failed:>8}",
        *(f"queue {shown(name):<13} {depth:>8}" for name, depth in snapshot.queues.items()),
        f"paused credentials  {snapshot.paused_credentials:>8}",
    ]
    oldest = snapshot.oldest
    if oldest is None:
        lines.append("oldest pending             -")
        return "\n".join(lines)
    lines.append(
        f"oldest pending      {shown(oldest.media_id)}  sent {when(str(oldest.timestamp))}, "
        f"deadline in {_span(oldest.deadline - snapshot.taken_at)}"
    )
    lines.append("")
    lines.append("nearest their 7-day deadline:")
    lines.append(f"  {'media id':<40} {'state':<10} {'sent':<20} deadline in")
    for item in snapshot.nearest:
        lines.append(
            f"  {shown(item.media_id):<40} {shown(item.state):<10} {when(str(item.timestamp)):<20} "
            f"{_span(item.deadline - snapshot.taken_at)}"
        )
    if snapshot.sampled < snapshot.pending:
        lines.append(f"(from the first {snapshot.sampled} of {snapshot.pending} pending records)")
    return "\n".join(lines)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the snapshot as JSON.")
@click.option("--nearest", default=10, show_default=True, help="List this many pending media.")
def status(as_json: bool, nearest: int) -> None:
    """Counts by state, queue depths, and the pending media nearest their 7-day deadline."""
    store, _ = state_store()
    try:
        snapshot = read_snapshot(store.redis, nearest=nearest)
    except (RedisError, OSError) as exc:
        click.echo(f"error: Redis is unavailable ({type(exc).__name__})", err=True)
        sys.exit(EXIT_UNAVAILABLE)
    if as_json:
        document = asdict(snapshot)
        document["oldest"] = asdict(snapshot.oldest) if snapshot.oldest else None
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo(render(snapshot))
