"""One delivery attempt against local servers: statuses, Retry-After, redirects not followed,
a server that hangs or trickles its answer cut at the deadline, Standard Webhooks headers."""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from standardwebhooks.webhooks import Webhook

from devstack.downstream import Downstream
from devstack.processes import free_port
from wa_media.stores.delivery_http import DeliveryClient, standard_headers

SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()


@pytest.fixture
def downstream() -> Iterator[Downstream]:
    with Downstream() as server:
        yield server


def test_a_2xx_is_taken_and_the_body_goes_byte_for_byte(downstream: Downstream) -> None:
    body = b'{"a": 1,  "b":"\xc3\xa9"}\n'
    answer = DeliveryClient(2).post(downstream.url, body, {"Content-Type": "application/json"})
    assert (answer.status, answer.failure) == (200, None)
    (got,) = downstream.all()
    assert got.body == body
    assert got.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("status", "failure"), [(500, "http_5xx"), (404, "http_4xx"), (429, "http_429")]
)
def test_other_statuses_fail(downstream: Downstream, status: int, failure: str) -> None:
    downstream.answer(status, retry_after=7 if status == 429 else None)
    answer = DeliveryClient(2).post(downstream.url, b"{}", {})
    assert (answer.status, answer.failure) == (status, failure)
    assert answer.retry_after == ("7" if status == 429 else None)


def test_a_redirect_is_a_failure_and_not_followed(downstream: Downstream) -> None:
    downstream.answer(307, location=downstream.url + "/moved")
    answer = DeliveryClient(2).post(downstream.url, b"{}", {})
    assert answer.failure == "redirect"
    assert [r.path for r in downstream.all()] == ["/hook"]


def test_a_hanging_server_is_cut_at_the_deadline(downstream: Downstream) -> None:
    downstream.hang(30)
    started = time.monotonic()
    answer = DeliveryClient(1).post(downstream.url, b"{}", {})
    assert answer.failure == "timeout"
    assert time.monotonic() - started < 1.8


def test_a_trickling_server_is_cut_at_the_deadline() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def trickle() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\n")
            while not stop.wait(0.2):  # a header byte at a time, each well within the timeout
                try:
                    connection.sendall(b"X")
                except OSError:
                    return

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        answer = DeliveryClient(1).post(f"http://127.0.0.1:{port}/", b"{}", {})
        assert answer.failure == "timeout"
        assert time.monotonic() - started < 1.8
    finally:
        stop.set()
        listener.close()


def test_nobody_listening_is_a_connection_failure() -> None:
    answer = DeliveryClient(1).post(f"http://127.0.0.1:{free_port()}/", b"{}", {})
    assert answer.failure == "connection"


def test_standard_webhooks_headers_verify_with_the_library() -> None:
    body = b'{"type":"media.archived"}'
    headers = standard_headers(SECRET, "evt_1", time.time(), body)
    assert headers["webhook-id"] == "evt_1"
    Webhook(SECRET).verify(body, headers)
