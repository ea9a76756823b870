"""The Cloud API's routes on the Graph host (`/{version}/...`) and its lookaside host."""

from __future__ import annotations

from werkzeug.routing import Rule

from graphsim import graph_api, uploads
from graphsim.dialects import CLOUD, CLOUD_UPLOAD
from graphsim.routing import Endpoint

__all__ = ["rules"]


def rules() -> list[Rule]:
    """The Cloud API's URL rules (they need the `version` converter)."""
    g, u = graph_api, uploads
    session = Endpoint(u.upload_to_session, "upload", CLOUD_UPLOAD)
    status = Endpoint(u.session_status, "upload_session", CLOUD_UPLOAD)
    return [
        Rule(
            "/lookaside/<media_id>",
            methods=["GET"],
            endpoint=Endpoint(g.download, "download", CLOUD),
        ),
        Rule(
            "/<version:_>/<phone_number_id>/messages",
            methods=["POST"],
            endpoint=Endpoint(g.send, "send", CLOUD),
        ),
        Rule(
            "/<version:_>/<phone_number_id>/media",
            methods=["POST"],
            endpoint=Endpoint(u.upload_media, "upload", CLOUD_UPLOAD),
        ),
        Rule(
            "/<version:_>/<app_id>/uploads",
            methods=["POST"],
            endpoint=Endpoint(u.create_session, "upload_session", CLOUD_UPLOAD),
        ),
        # Meta's upload guide names session paths with and without the version.
        Rule("/<version:_>/upload:<session>", methods=["GET"], endpoint=status),
        Rule("/<version:_>/upload:<session>", methods=["POST"], endpoint=session),
        Rule("/upload:<session>", methods=["GET"], endpoint=status),
        Rule("/upload:<session>", methods=["POST"], endpoint=session),
        Rule(
            "/<version:_>/<media_id>", methods=["GET"], endpoint=Endpoint(g.lookup, "lookup", CLOUD)
        ),
        Rule(
            "/<version:_>/<media_id>",
            methods=["DELETE"],
            endpoint=Endpoint(g.delete, "delete", CLOUD),
        ),
    ]
