"""Every Redis key of the service, spelled once: the records' contract with the releases before
and after this one, with the operator's tools, and with `devstack` and `bench`.

Every key starts with `wa:`. A member (`{phone_number_id}:{media_id}` of a media,
`{phone_number_id}:{wamid}` of a warning; the previous release's: the media id or wamid alone)
ends the key of its record. Pure strings: no client, no I/O.
"""

from __future__ import annotations

__all__ = [
    "ARCHIVED_KEY",
    "DELIVER_BODIES_KEY",
    "DELIVER_DEAD_KEY",
    "DELIVER_DESTINATIONS_KEY",
    "DELIVER_DUE_KEY",
    "DELIVER_HELD_BYTES_KEY",
    "DELIVER_INBOX_KEY",
    "FAILED_KEY",
    "LEASE_PATTERN",
    "PAUSED_KEY",
    "PENDING_KEY",
    "PENDING_WINDOW_KEY",
    "REPLIES_PENDING_KEY",
    "REPLY_PATTERN",
    "SKIPPED_KEY",
    "SWEEP_LAST_KEY",
    "SWEEP_LOCK_KEY",
    "commit_key",
    "deliver_body_key",
    "deliver_failures_key",
    "deliver_inbox_key",
    "deliver_pause_key",
    "deliver_pending_key",
    "delivery_key",
    "lease_key",
    "lookup_rate_key",
    "media_key",
    "pause_key",
    "rate_key",
    "reply_job_key",
    "reply_key",
    "reply_rate_key",
    "reply_to_key",
]

# Media not settled yet, scored by when to look at them again.
PENDING_KEY = "wa:pending"
# The same media as wa:pending, scored by the start of their 7-day window: the oldest pending
# media is its first member, read in one command by every scrape.
PENDING_WINDOW_KEY = "wa:pending:window"
# Failed media, scored by when they failed.
FAILED_KEY = "wa:failed"
# Media archived in the last day, scored by when: `wa-media status` counts them (ZCOUNT).
ARCHIVED_KEY = "wa:archived"
# Held by the one sweep running, its value the holder's token (`host:pid:random`).
SWEEP_LOCK_KEY = "wa:sweep-lock"
# When the last sweep completed (a Unix time), written by each sweep that did: `web` serves it
# as wa_sweep_last_success_timestamp_seconds.
SWEEP_LAST_KEY = "wa:sweep:last"
# The warnings owed, scored by when the sweep should look at them again.
REPLIES_PENDING_KEY = "wa:replies:pending"
# The newest messages that looked like media but were not archived (`wa-media skipped`).
SKIPPED_KEY = "wa:skipped"
# The fingerprints of the paused tokens, scored by the end of their pause.
PAUSED_KEY = "wa:paused"


def media_key(member: str) -> str:
    """A media's record (a hash): `wa:media:{phone_number_id}:{media_id}`, or the previous
    release's `wa:media:{media_id}`."""
    return f"wa:media:{member}"


def lease_key(member: str) -> str:
    """A media's lease, held by the worker archiving it: `wa:lease:{phone_number_id}:{media_id}`."""
    return f"wa:lease:{member}"


def reply_key(member: str) -> str:
    """A warning's ledger entry: `wa:reply:{phone_number_id}:{wamid}`, or the previous
    release's `wa:reply:{wamid}`."""
    return f"wa:reply:{member}"


def reply_job_key(member: str) -> str:
    """A warning's job, for the sweep: `wa:reply-job:{phone_number_id}:{wamid}`."""
    return f"wa:reply-job:{member}"


def reply_to_key(phone_number_id: str, recipient_fingerprint: str) -> str:
    """The slot of one customer of an account: one warning per interval."""
    return f"wa:reply-to:{phone_number_id}:{recipient_fingerprint}"


def reply_rate_key(phone_number_id: str, minute: int) -> str:
    """An account's count of warnings in one minute (Unix time // 60)."""
    return f"wa:reply-rate:{phone_number_id}:{minute}"


def commit_key(bucket: str, key: str) -> str:
    """The claim of the one worker committing an object's key right now."""
    return f"wa:commit:{bucket}/{key}"


def pause_key(fingerprint: str) -> str:
    """Present while calls with a token (by its fingerprint) are paused."""
    return f"wa:pause:{fingerprint}"


def rate_key(fingerprint: str, second: int) -> str:
    """A token's count of calls in one second (Unix time)."""
    return f"wa:rate:{fingerprint}:{second}"


def lookup_rate_key(fingerprint: str, second: int) -> str:
    """A read API key's count of requests in one second (Unix time), by the key's fingerprint."""
    return f"wa:lookup-rate:{fingerprint}:{second}"


# Patterns (SCAN/KEYS) of the tools that watch the records.
LEASE_PATTERN = lease_key("*")
REPLY_PATTERN = reply_key("*")


# ------------------------------------------------------------ relay and archive events
# (wa_media/stores/deliveries.py; docs/architecture.md, "Records in Redis")

# Deliveries not settled yet (ids `dlv_...`), scored by when the sweep should look at them.
DELIVER_DUE_KEY = "wa:deliver:due"
# Dead letters, scored by when they died (`wa-media dead-letters`).
DELIVER_DEAD_KEY = "wa:deliver:dead"
# Bytes of webhook bodies held for relay (RELAY_HELD_BYTES_MAX bounds it).
DELIVER_HELD_BYTES_KEY = "wa:deliver:held-bytes"
# The held bodies (members `{ref}|{bytes}`), scored by when they expire: the sweep gives back
# the bytes of bodies that expired.
DELIVER_BODIES_KEY = "wa:deliver:bodies"
# The names of the destinations deliveries were made for (the scrape's gauges read them).
DELIVER_DESTINATIONS_KEY = "wa:deliver:destinations"
# Webhooks `web` published for relay whose fan-out has not held them yet, scored by arrival.
DELIVER_INBOX_KEY = "wa:deliver:inbox"


def delivery_key(delivery_id: str) -> str:
    """A delivery's record (a hash): `wa:delivery:{id}`."""
    return f"wa:delivery:{delivery_id}"


def deliver_body_key(ref: str) -> str:
    """A webhook body held once for all its destinations (a hash: body, refs, size)."""
    return f"wa:deliver-body:{ref}"


def deliver_pending_key(destination: str) -> str:
    """A destination's deliveries not settled, scored by when their age started."""
    return f"wa:deliver-pending:{destination}"


def deliver_pause_key(destination: str) -> str:
    """Present while a destination is paused; its value is when the pause ends."""
    return f"wa:deliver-pause:{destination}"


def deliver_failures_key(destination: str) -> str:
    """A destination's failed attempts in a row."""
    return f"wa:deliver-failures:{destination}"


def deliver_inbox_key(relay_id: str) -> str:
    """The relay member `web` published for a webhook, until its fan-out held it."""
    return f"wa:deliver-inbox:{relay_id}"
