"""The 131052 warning is no spam cannon: its recipient is validated and a webhook owes at most
REPLY_MAX_PER_WEBHOOK of them. (The rates per recipient and per account are kept in Redis:
tests/e2e/test_tenancy.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from wa_media.core.errors import ConfigError
from wa_media.core.identity import recipient_address
from wa_media.core.jobs import ReplyJob
from wa_media.providers.accounts import worker_settings
from webhook.config import WebSettings
from webhook.payload import REPLY_DROP_REASONS, parse_cloud_payload, parse_onprem_payload
from worker.replies import reply_address

PNID = "106540352242922"


def too_big(wamid: str, sender: str | None = "16505551234", **extra: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "id": wamid,
        "timestamp": "1700000000",
        "type": "unsupported",
        "errors": [{"code": 131052, "title": "Media file size too big"}],
        **extra,
    }
    if sender is not None:
        message["from"] = sender
    return message


def payload(*messages: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "WABA",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "metadata": {"phone_number_id": PNID},
                            "messages": list(messages),
                        },
                    }
                ],
            }
        ],
    }


@pytest.mark.parametrize(
    ("given", "address"),
    [
        ("16505551234", "16505551234"),
        ("+16505551234", "16505551234"),
        ("123456", "123456"),
        ("123456789012345", "123456789012345"),
        ("US.13491208655302741918", "US.13491208655302741918"),
        ("US.ENT.11815799212886844830", "US.ENT.11815799212886844830"),
        ("12345", None),
        ("1234567890123456", None),
        ("++16505551234", None),
        ("1650555123a", None),
        ("1650 555 1234", None),
        ("١٦٥٠٥٥٥١٢٣٤", None),  # digits of another script
        ("", None),
        ("us.1349", None),
        ("+US.1349", None),
    ],
)
def test_recipient_address(given: str, address: str | None) -> None:
    assert recipient_address(given) == address


def test_a_valid_phone_is_warned_without_its_plus() -> None:
    [reply] = parse_cloud_payload(payload(too_big("wamid.1", "+16505551234"))).replies
    assert (reply.to, reply.recipient) == ("16505551234", None)


@pytest.mark.parametrize("sender", ["12", "not-a-number", "1" * 16, "+", "1-800-FLOWERS"])
def test_an_invalid_recipient_is_dropped_not_warned(sender: str) -> None:
    parsed = parse_cloud_payload(payload(too_big("wamid.1", sender)))
    assert parsed.replies == []
    assert [(d.reason, d.wamid, d.phone_number_id) for d in parsed.dropped_replies] == [
        ("invalid_recipient", "wamid.1", PNID)
    ]


def test_a_customer_with_an_invalid_phone_but_a_bsuid_is_warned_by_bsuid() -> None:
    message = too_big("wamid.1", "12", from_user_id="US.13491208655302741918")
    [reply] = parse_cloud_payload(payload(message)).replies
    assert (reply.to, reply.recipient) == (None, "US.13491208655302741918")


def test_an_invalid_bsuid_is_dropped() -> None:
    message = too_big("wamid.1", None, from_user_id="not a bsuid")
    parsed = parse_cloud_payload(payload(message))
    assert parsed.replies == []
    assert [d.reason for d in parsed.dropped_replies] == ["invalid_recipient"]


def test_a_thousand_warnings_in_one_webhook_queue_at_most_the_cap() -> None:
    messages = [too_big(f"wamid.{i}", f"1650555{i:04d}") for i in range(1000)]
    parsed = parse_cloud_payload(payload(*messages))
    assert [r.wamid for r in parsed.replies] == [f"wamid.{i}" for i in range(10)]
    assert len(parsed.dropped_replies) == 990
    assert {d.reason for d in parsed.dropped_replies} == {"request_cap"}
    assert parsed.dropped_replies[0].wamid == "wamid.10"


def test_the_cap_is_per_request_and_can_be_set() -> None:
    messages = [too_big(f"wamid.{i}", f"1650555{i:04d}") for i in range(5)]
    parsed = parse_cloud_payload(payload(*messages), max_replies=2)
    assert len(parsed.replies) == 2
    assert len(parsed.dropped_replies) == 3
    # Invalid recipients do not use the cap up.
    mixed = [too_big("wamid.x", "1"), *messages]
    parsed = parse_cloud_payload(payload(*mixed), max_replies=2)
    assert [r.wamid for r in parsed.replies] == ["wamid.0", "wamid.1"]
    assert [d.reason for d in parsed.dropped_replies] == ["invalid_recipient", *["request_cap"] * 3]


def test_on_premises_warnings_are_validated_and_capped_too() -> None:
    document = {
        "messages": [too_big(f"id{i}", f"1650555{i:04d}") for i in range(3)]
        + [too_big("bad", "12")]
    }
    parsed = parse_onprem_payload(document, "15550001111", max_replies=2)
    assert len(parsed.replies) == 2
    assert sorted(d.reason for d in parsed.dropped_replies) == [
        "invalid_recipient",
        "request_cap",
    ]


def test_drop_reasons_are_bounded() -> None:
    assert set(REPLY_DROP_REASONS) == {
        "invalid_recipient",
        "request_cap",
        "recipient_rate",
        "account_rate",
        "reply_off",
    }


def test_settings_of_the_limits() -> None:
    web = WebSettings.from_env({"WHATSAPP_APP_SECRET": "s", "WHATSAPP_VERIFY_TOKEN": "v"})
    assert web.reply_max_per_webhook == 10
    web = WebSettings.from_env(
        {"WHATSAPP_APP_SECRET": "s", "WHATSAPP_VERIFY_TOKEN": "v", "REPLY_MAX_PER_WEBHOOK": "3"}
    )
    assert web.reply_max_per_webhook == 3
    worker = worker_settings({"WHATSAPP_ACCESS_TOKEN": "t", "S3_BUCKET": "b"})
    assert (worker.reply_rate_per_account, worker.reply_recipient_interval) == (60, 3600)
    worker = worker_settings(
        {
            "WHATSAPP_ACCESS_TOKEN": "t",
            "S3_BUCKET": "b",
            "REPLY_RATE_PER_ACCOUNT": "5",
            "REPLY_RECIPIENT_INTERVAL": "60",
        }
    )
    assert (worker.reply_rate_per_account, worker.reply_recipient_interval) == (5, 60)
    for name in ("REPLY_RATE_PER_ACCOUNT", "REPLY_RECIPIENT_INTERVAL"):
        with pytest.raises(ConfigError, match=name):
            worker_settings({"WHATSAPP_ACCESS_TOKEN": "t", "S3_BUCKET": "b", name: "0"})
    with pytest.raises(ConfigError, match="REPLY_MAX_PER_WEBHOOK"):
        WebSettings.from_env(
            {"WHATSAPP_APP_SECRET": "s", "WHATSAPP_VERIFY_TOKEN": "v", "REPLY_MAX_PER_WEBHOOK": "0"}
        )


@pytest.mark.parametrize(
    ("to", "bsuid", "address"),
    [
        ("16505551234", None, "16505551234"),
        ("+16505551234", None, "16505551234"),
        ("12", None, None),
        ("12", "US.13491208655302741918", None),  # `to` given: it is the address
        (None, "US.13491208655302741918", "US.13491208655302741918"),
        (None, "16505551234", None),  # `recipient` holds BSUIDs only
    ],
)
def test_the_worker_checks_the_address_of_a_job_an_older_web_recorded(
    to: str | None, bsuid: str | None, address: str | None
) -> None:
    job = ReplyJob(phone_number_id=PNID, wamid="wamid.1", to=to, recipient=bsuid, error_code=131052)
    assert reply_address(job) == address
