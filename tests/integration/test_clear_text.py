"""The credential never travels in clear text: `http://` base URLs are refused at start-up and
`http://` download URLs when they come, unless their host is loopback or ALLOW_INSECURE_HTTP
says so; an allowlist entry `host` means HTTPS on 443.

The download tests run the simulator on every interface and reach it through an address of
this machine that is not loopback, so that a URL sent in clear text would really travel.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from graphsim import Simulator, SimulatorClient
from tests.lan import other_address
from tests.sim_providers import PHONE
from wa_media.core.allowlist import is_allowed_media_url
from wa_media.core.errors import ConfigError, ForeignHost, InsecureUrl
from wa_media.core.provider import Connection, Provider
from wa_media.core.reasons import reason_of
from wa_media.providers.accounts import worker_settings
from wa_media.providers.registry import make_provider
from webhook.config import WebSettings

WORKER_ENV = {"WHATSAPP_ACCESS_TOKEN": "tok-123", "S3_BUCKET": "archive"}


@pytest.mark.parametrize(
    ("url", "entries", "insecure", "allowed"),
    [
        # `host` is HTTPS on 443, and HTTPS only.
        ("https://lookaside.fbsbx.com/x", ("lookaside.fbsbx.com",), False, True),
        ("https://lookaside.fbsbx.com:443/x", ("lookaside.fbsbx.com",), False, True),
        ("http://lookaside.fbsbx.com/x", ("lookaside.fbsbx.com",), False, False),
        ("http://lookaside.fbsbx.com:443/x", ("lookaside.fbsbx.com",), False, False),
        ("https://lookaside.fbsbx.com:8443/x", ("lookaside.fbsbx.com",), False, False),
        # `host:port` is HTTPS on that port.
        ("https://media.example:8443/x", ("media.example:8443",), False, True),
        ("http://media.example:8443/x", ("media.example:8443",), False, False),
        ("https://media.example/x", ("media.example:443",), False, True),
        # Plain HTTP to loopback: nothing leaves the machine.
        ("http://127.0.0.1:8080/x", ("127.0.0.1:8080",), False, True),
        ("http://127.0.0.2:8080/x", ("127.0.0.2:8080",), False, True),
        ("http://localhost:8080/x", ("localhost:8080",), False, True),
        ("http://[::1]:9000/x", ("[::1]:9000",), False, True),
        ("http://127.0.0.1/x", ("127.0.0.1",), False, False),
        ("http://127.0.0.1/x", ("127.0.0.1:80",), False, True),
        # Anywhere else, with the development setting only.
        ("http://sim.internal:8080/x", ("sim.internal:8080",), False, False),
        ("http://sim.internal:8080/x", ("sim.internal:8080",), True, True),
        ("http://sim.internal/x", ("sim.internal",), True, False),
        ("http://sim.internal/x", ("sim.internal:80",), True, True),
        ("http://10.0.0.5:9090/x", ("10.0.0.5:9090",), False, False),
        ("https://user@media.example/x", ("media.example",), True, False),
    ],
)
def test_allowlist_entries_name_https_unless_loopback(
    url: str, entries: tuple[str, ...], insecure: bool, allowed: bool
) -> None:
    assert is_allowed_media_url(url, entries, insecure_http=insecure) is allowed


# --- start-up -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "variable"),
    [
        ({"WHATSAPP_GRAPH_URL": "http://graph.example.com"}, "WHATSAPP_GRAPH_URL"),
        ({"WHATSAPP_GRAPH_URL": "http://10.1.2.3:5000/"}, "WHATSAPP_GRAPH_URL"),
        ({"WHATSAPP_PROVIDER": "360dialog", "D360_URL": "http://waba.example"}, "D360_URL"),
        (
            {"WHATSAPP_PROVIDER": "onprem", "WHATSAPP_ONPREM_URL": "http://10.0.0.5:9090"},
            "WHATSAPP_ONPREM_URL",
        ),
    ],
)
def test_a_clear_text_base_url_is_refused_at_start_up(
    changes: dict[str, str], variable: str
) -> None:
    env = {**WORKER_ENV, "D360_API_KEY": "k", **changes}
    with pytest.raises(ConfigError, match=rf"^{variable} is invalid: http:// would send"):
        worker_settings(env)

    # The development setting lets it through, and the account's downloads too.
    settings = worker_settings({**env, "ALLOW_INSECURE_HTTP": "true"})
    [account] = settings.accounts.accounts
    assert account.connection.insecure_http is True


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:5000", "http://localhost:5000", "http://[::1]:5000"]
)
def test_a_loopback_base_url_may_be_plain_http(url: str) -> None:
    settings = worker_settings({**WORKER_ENV, "WHATSAPP_GRAPH_URL": url})
    [account] = settings.accounts.accounts
    assert account.connection.base_url == url
    assert account.connection.insecure_http is False


def test_the_s3_endpoint_may_be_plain_http() -> None:
    # S3's requests are signed; no secret travels with them (a SeaweedFS beside the worker).
    settings = worker_settings({**WORKER_ENV, "S3_ENDPOINT_URL": "http://seaweedfs:8333"})
    assert settings.s3_endpoint_url == "http://seaweedfs:8333"


def test_the_development_setting_is_a_flag() -> None:
    with pytest.raises(ConfigError, match="ALLOW_INSECURE_HTTP"):
        worker_settings({**WORKER_ENV, "ALLOW_INSECURE_HTTP": "perhaps"})


@pytest.mark.parametrize(
    "hosts", ["lookaside.fbsbx.com:99999", "lookaside.fbsbx.com:https", "http://a.example", "a b"]
)
def test_media_host_entries_are_a_host_and_port(hosts: str) -> None:
    with pytest.raises(ConfigError, match="WHATSAPP_MEDIA_HOSTS"):
        worker_settings({**WORKER_ENV, "WHATSAPP_MEDIA_HOSTS": hosts})


def test_an_accounts_file_url_in_clear_text_is_refused_naming_its_entry(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(
        "accounts:\n"
        '  "15550001111":\n'
        "    provider: onprem\n"
        "    url: http://wa.gamma.internal:9090\n"
        "    token: t\n"
        f"    webhook_token: {'w' * 20}\n"
    )
    env = {"WHATSAPP_ACCOUNTS_FILE": str(accounts), "S3_BUCKET": "b"}
    expected = r"^WHATSAPP_ACCOUNTS_FILE: accounts\.15550001111\.url: http:// would send"
    with pytest.raises(ConfigError, match=expected):
        worker_settings(env)
    [account] = worker_settings({**env, "ALLOW_INSECURE_HTTP": "1"}).accounts.accounts
    assert account.connection.insecure_http is True
    # `web` never sends the credential: the file stays valid for it.
    assert WebSettings.from_env(env).accounts.by_token("w" * 20) is not None


# --- download time --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def everywhere() -> Iterator[tuple[Simulator, str]]:
    """A simulator on every interface, and the machine's address that is not loopback."""
    address = other_address()
    simulator = Simulator()
    simulator.start(host="0.0.0.0")  # noqa: S104 - reached through a second address
    with simulator:
        yield simulator, address


@pytest.fixture
def lan(everywhere: tuple[Simulator, str]) -> Iterator[tuple[Simulator, SimulatorClient, str]]:
    simulator, address = everywhere
    with simulator.client() as control:
        control.reset()
        yield simulator, control, address


def on_host(url: str, host: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{host}:{parts.port}"))


def provider(simulator: Simulator, address: str, *, insecure: bool = False) -> Provider:
    """The Cloud API client of a configuration whose Graph URL is the loopback one, and whose
    media hosts name the simulator on both addresses."""
    port = urlsplit(simulator.url).port
    connection = Connection(
        "cloud",
        simulator.url,
        simulator.token,
        api_version=simulator.version,
        media_hosts=(simulator.media_host, f"{address}:{port}"),
        insecure_http=insecure,
    )
    return make_provider(connection, max_media_bytes=1 << 20, session=requests.Session())


def read(client: Provider, media_id: str, url: str | None = None) -> bytes:
    with client.fetch(media_id, PHONE, url) as fetched:
        return b"".join(fetched.chunks)


def fallbacks(reason: str) -> float:
    labels = {"reason": reason}
    return REGISTRY.get_sample_value("wa_webhook_url_fallbacks_total", labels) or 0.0


def test_a_looked_up_url_in_clear_text_never_gets_the_token(
    lan: tuple[Simulator, SimulatorClient, str],
) -> None:
    simulator, control, address = lan
    media_id = control.add_media(os.urandom(1000), "image/jpeg", phone_number_id=PHONE).id
    # The look-up answers a plain-HTTP URL on the machine's other address, an allowed media host.
    control.add_fault(op="lookup", media_id=media_id, url_host=address)

    with pytest.raises(InsecureUrl, match="http:// to a host that is not loopback") as err:
        read(provider(simulator, address), media_id)

    assert reason_of(err.value) == "host_not_allowed"
    assert isinstance(err.value, ForeignHost)  # failed for good, as any refused host
    assert [entry["op"] for entry in control.requests()] == ["lookup"]


def test_a_looked_up_url_in_clear_text_is_used_with_the_development_setting(
    lan: tuple[Simulator, SimulatorClient, str],
) -> None:
    simulator, control, address = lan
    data = os.urandom(1000)
    media_id = control.add_media(data, "image/jpeg", phone_number_id=PHONE).id
    control.add_fault(op="lookup", media_id=media_id, url_host=address)

    assert read(provider(simulator, address, insecure=True), media_id) == data
    assert [entry["op"] for entry in control.requests()] == ["lookup", "download"]


def test_a_webhook_url_in_clear_text_is_given_up_for_the_lookup(
    lan: tuple[Simulator, SimulatorClient, str],
) -> None:
    simulator, control, address = lan
    data = os.urandom(1000)
    media_id = control.add_media(data, "image/jpeg", phone_number_id=PHONE).id
    url = on_host(control.download_url(media_id), address)
    before = fallbacks("insecure_url")

    with capture_logs() as logs:
        got = read(provider(simulator, address), media_id, url)

    assert got == data
    # The webhook's URL was never requested: the look-up's (loopback) served the bytes.
    assert [entry["op"] for entry in control.requests()] == ["lookup", "download"]
    [fallback] = [entry for entry in logs if entry["event"] == "webhook_url_fallback"]
    assert (fallback["reason"], fallback["host"], fallback["log_level"]) == (
        "insecure_url",
        address,
        "warning",
    )
    assert fallbacks("insecure_url") == before + 1
