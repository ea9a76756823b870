"""Which accounts a webhook names, for its relay."""

from __future__ import annotations

from typing import Any

import pytest

from devstack import webhooks
from webhook.relay import body_numbers


def _change(number: Any, field: str = "messages") -> dict[str, Any]:
    return {"field": field, "value": {"metadata": {"phone_number_id": number}}}


def test_each_number_of_every_entry_and_change_once_in_order() -> None:
    document = {
        "object": "whatsapp_business_account",
        "entry": [
            {"id": "w1", "changes": [_change("111"), _change("222", "statuses")]},
            {"id": "w2", "changes": [_change("111"), _change("333", "history")]},
        ],
    }
    assert body_numbers(document) == ["111", "222", "333"]


def test_a_partner_envelope_names_its_number() -> None:
    payload = webhooks.envelope([], phone_number_id="444")
    change = payload["entry"][0]["changes"][0]
    assert body_numbers({"event": change["field"], "data": change["value"]}) == ["444"]


@pytest.mark.parametrize(
    "document",
    [
        None,
        [],
        {"entry": "x"},
        {"entry": [{"changes": [_change(7)]}]},
        {"entry": [{"changes": [_change("a/b")]}]},
        {"entry": [{"changes": [{"value": "x"}]}]},
        {"messages": []},  # On-Premises: the number is the route's
    ],
)
def test_what_names_no_usable_number(document: Any) -> None:
    assert body_numbers(document) == []
