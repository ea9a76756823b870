"""How `web` authenticates and reads each provider's webhooks, by kind.

Every account may be reached at `/webhook/<token>`: the secret path token authenticates the
delivery and names the account, and its provider's reader parses the body (below). Accounts
whose provider Meta signs for (the Cloud API: `signed_webhooks` of its plugin in
wa_media/providers, WebRoute.signed) are reached at `/webhook` too, authenticated by
X-Hub-Signature-256 with the apps' secrets and read as Cloud API payloads (views.receive).
A new provider is one entry here (docs/development.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, Protocol

from wa_media.config.accounts import WebRoute
from wa_media.core.provider import ProviderKind
from webhook.payload import ParsedPayload, parse_cloud_payload, parse_onprem_payload

__all__ = ["WEBHOOK_PROVIDERS", "TokenReader", "WebhookProvider"]


class TokenReader(Protocol):
    """Parses the body of a delivery authenticated by `route`'s path token."""

    def __call__(
        self, document: Any, route: WebRoute, *, received_at: int, max_replies: int
    ) -> ParsedPayload: ...


def _read_cloud_format(
    document: Any, route: WebRoute, *, received_at: int, max_replies: int
) -> ParsedPayload:
    # The Cloud API's payload, as 360dialog passes it on: it names the phone_number_id, which
    # must be the account's (any for an account of any number).
    number = route.phone_number_id
    return parse_cloud_payload(
        document,
        accepts=lambda n: number in (None, n),
        received_at=received_at,
        archives_outbound=lambda _: route.archive_outbound,
        max_replies=max_replies,
        policy_of=lambda _: route.policy,
    )


def _read_onprem_format(
    document: Any, route: WebRoute, *, received_at: int, max_replies: int
) -> ParsedPayload:
    # On-Premises payloads name no phone_number_id: the account's, known from the token.
    number = route.phone_number_id
    assert number is not None  # an On-Premises account always has one
    return parse_onprem_payload(
        document, number, received_at=received_at, max_replies=max_replies, policy=route.policy
    )


@dataclass(frozen=True)
class WebhookProvider:
    """How `web` takes one provider's webhooks."""

    authentication: Literal["signature or path token", "path token"]
    """How its deliveries are authenticated: X-Hub-Signature-256 by an app's secret at
    `/webhook`, or an account's path token; or the account's secret path token only."""
    read_token_delivery: TokenReader
    """The parser of a delivery at `/webhook/<token>`."""


WEBHOOK_PROVIDERS: Mapping[ProviderKind, WebhookProvider] = MappingProxyType(
    {
        "cloud": WebhookProvider("signature or path token", _read_cloud_format),
        "360dialog": WebhookProvider("path token", _read_cloud_format),
        "onprem": WebhookProvider("path token", _read_onprem_format),
    }
)
"""Every provider kind's webhooks (wa_media.core.provider.PROVIDER_KINDS)."""
