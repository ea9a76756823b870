"""The bare Flask app `bench/webhook.py` compares `web` with: it reads the body and answers 200.

Gunicorn serves `bench.bare_app:create_app()`, with the same command line as `web`.
"""

from __future__ import annotations

from flask import Flask, Response, request

__all__ = ["create_app"]


def create_app() -> Flask:
    """A Flask app whose POST /webhook reads the body and answers 200 "ok", nothing else."""
    app = Flask(__name__)

    @app.post("/webhook")
    def receive() -> Response:
        request.get_data(cache=False)
        return Response("ok", status=200, mimetype="text/plain")

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok", status=200, mimetype="text/plain")

    return app
