"""The media types the simulated APIs accept for upload: the worker's own table (pure).

One table serves both sides (worker/mediatypes.py), so the simulator refuses exactly what the
worker refuses before sending.
"""

from __future__ import annotations

from worker.mediatypes import LIMITS, MAX_UPLOAD_SIZE, RESUMABLE_TYPES, UPLOAD_TYPES, upload_problem

__all__ = ["MAX_UPLOAD_SIZE", "RESUMABLE_TYPES", "SUPPORTED", "upload_problem"]

SUPPORTED: dict[str, int] = {mime: LIMITS[category] for mime, category in UPLOAD_TYPES.items()}
"""Each accepted MIME type with its largest size (a sticker's: animated)."""
