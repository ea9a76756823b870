"""Celery workers that look up, download, verify and archive WhatsApp media into S3.

`celery -A worker worker` finds the application as `worker.app`.
"""

from worker.celery_app import app

__all__ = ["app"]
