"""The webhook receiver: verifies Meta's signature and enqueues inbound media for the workers.

Gunicorn serves `webhook:create_app()`.
"""

from webhook.app import create_app

__all__ = ["create_app"]
