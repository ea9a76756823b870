"""The simulator's newer webhook shapes, and sends addressed by business-scoped user id."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
import requests

from devstack import webhooks
from graphsim import Simulator, SimulatorClient

SHA_B64 = base64.b64encode(hashlib.sha256(b"bytes").digest()).decode()
TOKEN = "sim-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BSUID = webhooks.DEFAULT_USER_ID
PARENT = webhooks.DEFAULT_PARENT_USER_ID
PHONE = webhooks.DEFAULT_SENDER


def image(media_id: str = "1234", **extra: Any) -> dict[str, Any]:
    return webhooks.media_message(
        "image", media_id, sha256_b64=SHA_B64, mime_type="image/jpeg", **extra
    )


def value_of(payload: dict[str, Any]) -> dict[str, Any]:
    [entry] = payload["entry"]
    [change] = entry["changes"]
    found: dict[str, Any] = change["value"]
    return found


# --- media ---------------------------------------------------------------------------------


def test_media_message_carries_its_url_only_when_given() -> None:
    url = "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1234&ext=1&hash=x"

    assert image(url=url)["image"]["url"] == url
    assert "url" not in image()["image"]


def test_set_media_makes_an_animated_sticker_and_leaves_the_original_alone() -> None:
    sticker = webhooks.media_message("sticker", "9", sha256_b64=SHA_B64, mime_type="image/webp")

    animated = webhooks.set_media(sticker, animated=True)

    assert animated["sticker"]["animated"] is True
    assert sticker["sticker"]["animated"] is False
    assert animated["id"] == sticker["id"]


# --- customers named by business-scoped user id --------------------------------------------


def test_from_user_adds_the_bsuids_beside_the_phone_number() -> None:
    message = webhooks.from_user(image(), BSUID, parent_user_id=PARENT)

    assert (message["from"], message["from_user_id"]) == (PHONE, BSUID)
    assert message["from_parent_user_id"] == PARENT


def test_from_user_without_phone_leaves_from_out() -> None:
    message = webhooks.from_user(image(), BSUID, phone=False)

    assert "from" not in message
    assert message["from_user_id"] == BSUID
    assert "from_parent_user_id" not in message


def test_contact_of_a_username_user_without_phone() -> None:
    entry = webhooks.contact(user_id=BSUID, parent_user_id=PARENT, username="@pat")

    assert entry == {
        "profile": {"name": f"Customer {BSUID}", "username": "@pat"},
        "user_id": BSUID,
        "parent_user_id": PARENT,
    }


def test_envelope_contacts_follow_the_senders_or_are_given() -> None:
    phone_only = image("1")
    bsuid_only = webhooks.from_user(image("2"), BSUID, phone=False)
    both = webhooks.from_user(image("3", sender="447700900123"), "GB.77", parent_user_id="GB.ENT.8")

    derived = value_of(webhooks.envelope([phone_only, bsuid_only, both]))["contacts"]
    given = webhooks.contact(user_id=BSUID, username="@pat")
    explicit = value_of(webhooks.envelope([bsuid_only], contacts=[given]))["contacts"]

    assert derived == [
        {"profile": {"name": f"Customer {PHONE}"}, "wa_id": PHONE},
        {"profile": {"name": f"Customer {BSUID}"}, "user_id": BSUID},
        {
            "profile": {"name": "Customer 447700900123"},
            "wa_id": "447700900123",
            "user_id": "GB.77",
            "parent_user_id": "GB.ENT.8",
        },
    ]
    assert explicit == [given]


def test_status_of_a_customer_known_only_by_bsuid() -> None:
    update = webhooks.status_update("wamid.OUT", recipient=None, recipient_user_id=BSUID)

    assert "recipient_id" not in update
    assert update["recipient_user_id"] == BSUID


# --- edits, unsupported and future types ---------------------------------------------------


def test_edit_wraps_the_new_content_without_its_envelope() -> None:
    new = image("5678", caption="after")

    edit = webhooks.edit_message("wamid.ORIGINAL", new, wamid="wamid.EDIT", timestamp=1700000000)

    assert edit == {
        "from": PHONE,
        "id": "wamid.EDIT",
        "timestamp": "1700000000",
        "type": "edit",
        "edit": {
            "original_message_id": "wamid.ORIGINAL",
            "message": {
                "context": {"id": "wamid.ORIGINAL"},
                "type": "image",
                "image": new["image"],
            },
        },
    }


def test_unsupported_message_names_its_type_and_error() -> None:
    message = webhooks.unsupported_message("poll_creation", wamid="wamid.U")

    assert message["type"] == "unsupported"
    assert message["unsupported"] == {"type": "poll_creation"}
    [error] = message["errors"]
    assert (error["code"], error["title"]) == (131051, "Message type unknown")
    assert error["error_data"] == {"details": "Message type is currently not supported."}


def test_future_message_carries_an_object_under_its_type() -> None:
    message = webhooks.future_message("hologram", {"frames": 3})

    assert (message["type"], message["hologram"]) == ("hologram", {"frames": 3})
    assert "id" in webhooks.future_message("hologram")["hologram"]


def test_with_unknown_fields_adds_one_to_every_object_and_changes_nothing_else() -> None:
    payload = webhooks.envelope([image()], statuses=[webhooks.status_update("wamid.S")])

    marked = webhooks.with_unknown_fields(payload, "later")

    value = value_of(marked)
    assert "later" in marked
    assert "later" in marked["entry"][0]
    assert "later" in marked["entry"][0]["changes"][0]
    assert "later" in value
    assert "later" in value["metadata"]
    assert "later" in value["contacts"][0]
    assert "later" in value["messages"][0]
    assert "later" in value["messages"][0]["image"]
    assert "later" in value["statuses"][0]
    assert "later" not in payload

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "later"}
        if isinstance(node, list):
            return [strip(item) for item in node]
        return node

    assert strip(marked) == payload


# --- coexistence: echoes and history -------------------------------------------------------


def test_echo_is_from_the_business_to_the_customer() -> None:
    sent = webhooks.from_user(image(), BSUID)

    echo = webhooks.echo_message(sent, to="447700900123", to_user_id="GB.77")
    payload = webhooks.echoes_envelope([echo])

    assert echo["from"] == webhooks.DEFAULT_DISPLAY_PHONE_NUMBER
    assert (echo["to"], echo["to_user_id"]) == ("447700900123", "GB.77")
    assert "from_user_id" not in echo
    assert echo["image"] == sent["image"]
    assert payload["entry"][0]["changes"][0]["field"] == "smb_message_echoes"
    value = value_of(payload)
    assert value["message_echoes"] == [echo]
    assert "messages" not in value
    assert value["metadata"]["phone_number_id"] == webhooks.DEFAULT_PHONE_NUMBER_ID


def test_echo_to_a_customer_without_phone() -> None:
    echo = webhooks.echo_message(image(), to=None, to_user_id=BSUID, to_parent_user_id=PARENT)

    assert "to" not in echo
    assert (echo["to_user_id"], echo["to_parent_user_id"]) == (BSUID, PARENT)


def test_history_payload_has_chunks_of_threads_of_messages() -> None:
    theirs = webhooks.history_message(image("1"))
    ours = webhooks.history_message(image("2"), to=PHONE, status="DELIVERED")
    first = webhooks.without_media_id(image("3", url="https://example.test/x"))

    payload = webhooks.history_envelope(
        [
            webhooks.history_chunk(
                [webhooks.history_thread(PHONE, [theirs, ours, first])],
                phase=1,
                chunk_order=2,
                progress=40,
            )
        ]
    )

    assert payload["entry"][0]["changes"][0]["field"] == "history"
    [chunk] = value_of(payload)["history"]
    assert chunk["metadata"] == {"phase": 1, "chunk_order": 2, "progress": 40}
    [thread] = chunk["threads"]
    assert thread["id"] == PHONE
    assert thread["messages"] == [theirs, ours, first]
    assert theirs["from"] == PHONE
    assert "to" not in theirs
    assert theirs["history_context"] == {"status": "READ"}
    assert (ours["from"], ours["to"]) == (webhooks.DEFAULT_DISPLAY_PHONE_NUMBER, PHONE)
    assert ours["history_context"] == {"status": "DELIVERED"}
    assert set(first["image"]) == {"mime_type", "sha256"}


def test_partner_envelope_is_360dialogs_event_with_the_waba_id_in_data() -> None:
    payload = webhooks.history_envelope([webhooks.history_chunk([])], phone_number_id="222")

    partner = webhooks.partner_envelope(payload, event_id="evt-1")

    assert partner["id"] == "evt-1"
    assert partner["event"] == "history"
    assert partner["data"] == {"id": webhooks.DEFAULT_WABA_ID, **value_of(payload)}
    assert partner["data"]["metadata"]["phone_number_id"] == "222"
    assert webhooks.partner_envelope(payload)["id"] != webhooks.partner_envelope(payload)["id"]


def test_field_envelope_wraps_any_field() -> None:
    payload = webhooks.field_envelope("user_preferences", {"anything": 1}, waba_id="W")

    change = {"field": "user_preferences", "value": {"anything": 1}}
    assert payload == {
        "object": "whatsapp_business_account",
        "entry": [{"id": "W", "changes": [change]}],
    }
    assert json.loads(webhooks.encode(payload)) == payload


# --- sends by business-scoped user id -------------------------------------------------------


def send(sim: Simulator, body: object, path: str | None = None) -> requests.Response:
    url = f"{sim.graph_url}/106540352242922/messages" if path is None else path
    return requests.post(url, headers=AUTH, json=body, timeout=5)


def text_body(**address: str) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        **address,
        "type": "text",
        "text": {"preview_url": False, "body": "too big"},
    }


@pytest.mark.parametrize("bsuid", [BSUID, PARENT])
def test_send_by_recipient_answers_its_user_id_and_records_it(
    sim: Simulator, client: SimulatorClient, bsuid: str
) -> None:
    response = send(sim, text_body(recipient=bsuid))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["contacts"] == [{"input": bsuid, "user_id": bsuid}]
    [sent] = client.sent_messages()
    assert (sent["to"], sent["recipient"]) == (None, bsuid)
    assert sent["wamid"] == body["messages"][0]["id"]
    assert sent["payload"]["recipient"] == bsuid
    assert client.stats()["sends"] == {bsuid: 1}
    [logged] = [r for r in client.requests() if r["op"] == "send"]
    assert logged["media_id"] == bsuid


def test_send_by_phone_records_no_recipient(sim: Simulator, client: SimulatorClient) -> None:
    response = send(sim, text_body(to=PHONE))

    assert response.json()["contacts"] == [{"input": PHONE, "wa_id": PHONE}]
    [sent] = client.sent_messages()
    assert (sent["to"], sent["recipient"]) == (PHONE, None)


def test_to_wins_over_recipient(sim: Simulator, client: SimulatorClient) -> None:
    response = send(sim, text_body(to=PHONE, recipient=BSUID))

    assert response.json()["contacts"] == [{"input": PHONE, "wa_id": PHONE}]
    [sent] = client.sent_messages()
    assert (sent["to"], sent["recipient"]) == (PHONE, BSUID)
    assert client.stats()["sends"] == {PHONE: 1}


def test_360dialog_sends_by_recipient_too(sim: Simulator, client: SimulatorClient) -> None:
    response = requests.post(
        f"{sim.d360_url}/messages",
        headers={"D360-API-KEY": sim.d360_keys[0]},
        json=text_body(recipient=BSUID),
        timeout=5,
    )

    assert response.status_code == 200, response.text
    assert response.json()["contacts"] == [{"input": BSUID, "user_id": BSUID}]
    [sent] = client.sent_messages()
    assert (sent["provider"], sent["recipient"]) == ("360dialog", BSUID)


@pytest.mark.parametrize(
    "address",
    [
        {},
        {"recipient": "16505551234"},
        {"recipient": "us.123"},
        {"recipient": 42},
        {"recipient": BSUID, "to": ""},
        {"to": "   "},
    ],
    ids=["neither", "phone-as-recipient", "lowercase", "number", "empty-to", "blank-to"],
)
def test_send_refuses_a_body_without_a_usable_address(
    sim: Simulator, client: SimulatorClient, address: dict[str, Any]
) -> None:
    response = send(sim, text_body(**address))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == 100
    assert client.sent_messages() == []


def test_send_fault_targets_a_bsuid(sim: Simulator, client: SimulatorClient) -> None:
    client.add_fault(op="send", media_id=BSUID, status=400, error={"code": 131047})

    assert send(sim, text_body(recipient=BSUID)).status_code == 400
    assert send(sim, text_body(recipient="GB.1")).status_code == 200
    assert [m["recipient"] for m in client.sent_messages()] == ["GB.1"]


def test_onprem_send_still_needs_to(sim: Simulator, client: SimulatorClient) -> None:
    body = {"recipient_type": "individual", "recipient": BSUID, "type": "text"}
    body["text"] = {"body": "too big"}
    response = requests.post(
        f"{sim.onprem_url}/v1/messages",
        headers={"Authorization": f"Bearer {sim.onprem_tokens[0]}"},
        json=body,
        timeout=5,
    )

    assert response.status_code == 400
    assert client.sent_messages() == []
