"""Every provider kind is in every registry and in the simulator, as docs/development.md says;
each plugin reads its accounts as before the plugins."""

from __future__ import annotations

import re
import textwrap
import typing
from pathlib import Path

import pytest

import graphsim.dialects
import graphsim.records
from graphsim import Simulator
from tests.sim_providers import connection
from wa_media.config.accounts import AccountsFile, web_accounts
from wa_media.config.target import ArchiveTarget
from wa_media.core.errors import ConfigError
from wa_media.core.provider import (
    PROVIDER_KINDS,
    Connection,
    MediaUrls,
    ProviderKind,
    ResumableUploads,
)
from wa_media.providers.accounts import load_accounts_file, worker_accounts
from wa_media.providers.plugin import capabilities
from wa_media.providers.registry import PROVIDERS, make_provider, plugin_of
from webhook.providers import WEBHOOK_PROVIDERS

ROOT = Path(__file__).resolve().parents[3]
HOOK = "hook-token-0123456789abcdef"


def _checklist() -> str:
    text = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")
    section = text.split("## Adding a provider", 1)[1]
    return section.split("\n## ", 1)[0]


def test_every_kind_has_a_plugin_of_its_kind() -> None:
    assert set(PROVIDERS) == set(PROVIDER_KINDS)
    for kind, plugin in PROVIDERS.items():
        assert plugin.kind == kind
        assert plugin_of(kind) is plugin


def test_every_kind_has_its_webhooks_in_web() -> None:
    assert set(WEBHOOK_PROVIDERS) == set(PROVIDER_KINDS)
    for kind, webhooks in WEBHOOK_PROVIDERS.items():
        signed = webhooks.authentication == "signature or path token"
        assert signed is PROVIDERS[kind].signed_webhooks, kind


def test_every_kind_is_simulated() -> None:
    assert set(typing.get_args(graphsim.records.Provider)) == set(PROVIDER_KINDS)
    dialects = [
        value
        for value in vars(graphsim.dialects).values()
        if isinstance(value, graphsim.dialects.Dialect)
    ]
    assert {dialect.provider for dialect in dialects} == set(PROVIDER_KINDS)


@pytest.mark.parametrize("kind", PROVIDER_KINDS)
def test_every_kind_reaches_the_simulator(sim: Simulator, kind: ProviderKind) -> None:
    client = make_provider(connection(sim, kind), max_media_bytes=1 << 20)

    assert isinstance(client, PROVIDERS[kind].client)
    assert client.connection.kind == kind


def test_the_checklist_names_every_kind_and_the_files_it_points_to() -> None:
    checklist = _checklist()
    for kind in PROVIDER_KINDS:
        assert f"`{kind}`" in checklist, kind
    for path in re.findall(r"`((?:wa_media|webhook|graphsim|tests)/[\w/.]+\.py)`", checklist):
        assert (ROOT / path).is_file(), path
    for name in ("registry.py", "webhook/providers.py", "graphsim", "Tests", "Docs"):
        assert name in checklist


def test_capabilities_are_the_protocols_the_clients_implement() -> None:
    assert capabilities(PROVIDERS["cloud"]) == {"media_urls", "resumable_uploads"}
    assert capabilities(PROVIDERS["360dialog"]) == {"media_urls", "resumable_uploads"}
    assert capabilities(PROVIDERS["onprem"]) == frozenset()
    assert not issubclass(PROVIDERS["onprem"].client, MediaUrls)
    assert not issubclass(PROVIDERS["onprem"].client, ResumableUploads)


# --- each plugin's accounts, as they were read before -----------------------------------------


def _worker_from_env(environ: dict[str, str]) -> Connection:
    accounts = worker_accounts(environ, target=ArchiveTarget("b"), delete_after_archive=False)
    [account] = accounts.accounts
    return account.connection


def test_each_kind_reads_its_own_variables() -> None:
    assert _worker_from_env({"WHATSAPP_ACCESS_TOKEN": "t"}) == Connection(
        "cloud", "https://graph.facebook.com", "t"
    )
    assert _worker_from_env(
        {
            "WHATSAPP_ACCESS_TOKEN": "t",
            "WHATSAPP_GRAPH_URL": "https://graph.example/",
            "WHATSAPP_API_VERSION": "v99.0",
            "WHATSAPP_MEDIA_HOSTS": "a.example, B.example:8443",
            "WHATSAPP_APP_ID": "42",
        }
    ) == Connection(
        "cloud",
        "https://graph.example",
        "t",
        api_version="v99.0",
        media_hosts=("a.example", "b.example:8443"),
        app_id="42",
    )
    assert _worker_from_env({"WHATSAPP_PROVIDER": "360dialog", "D360_API_KEY": "k"}) == Connection(
        "360dialog", "https://waba-v2.360dialog.io", "k"
    )
    assert _worker_from_env(
        {
            "WHATSAPP_PROVIDER": "onprem",
            "WHATSAPP_ACCESS_TOKEN": "t",
            "WHATSAPP_ONPREM_URL": "https://wa.example:9090/",
        }
    ) == Connection("onprem", "https://wa.example:9090", "t")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"WHATSAPP_PROVIDER": "360dialog"}, "D360_API_KEY"),
        ({"WHATSAPP_PROVIDER": "onprem", "WHATSAPP_ACCESS_TOKEN": "t"}, "WHATSAPP_ONPREM_URL"),
        ({"WHATSAPP_PROVIDER": "cloud"}, "WHATSAPP_ACCESS_TOKEN"),
        ({"WHATSAPP_PROVIDER": "telegram"}, "expected one of cloud, 360dialog, onprem"),
    ],
)
def test_each_kind_names_its_missing_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _worker_from_env(environ)


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "accounts.yaml"
    path.write_text(textwrap.dedent(text))
    path.chmod(0o600)
    return path


def test_each_kind_reads_its_own_fields_of_the_file(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        f"""\
        apps:
          acme: {{secret: s, app_id: "7"}}
        accounts:
          "1": {{token: a, media_hosts: [M.example], api_version: v1.0, app: acme}}
          "2": {{provider: 360dialog, token: b, webhook_token: {HOOK}}}
          "3": {{provider: onprem, token: c, url: "https://wa.example/", webhook_token: {HOOK}x}}
        """,
    )
    accounts = worker_accounts(
        {"WHATSAPP_ACCOUNTS_FILE": str(path)}, target=ArchiveTarget("b"), delete_after_archive=False
    )

    assert [a.connection for a in accounts.accounts] == [
        Connection(
            "cloud",
            "https://graph.facebook.com",
            "a",
            api_version="v1.0",
            media_hosts=("m.example",),
            app_id="7",
        ),
        Connection("360dialog", "https://waba-v2.360dialog.io", "b"),
        Connection("onprem", "https://wa.example", "c"),
    ]
    signed = [
        route.signed
        for route in web_accounts({"WHATSAPP_ACCOUNTS_FILE": str(path)}, providers=PROVIDERS).routes
    ]
    assert signed == [True, False, False]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "{provider: onprem, token: t, webhook_token: HOOK}",
            r"accounts\.1: url \(the On-Premises web app's base URL\) is required",
        ),
        (
            "{provider: 360dialog, token: t, webhook_token: HOOK, api_version: v1.0}",
            "accounts.1: api_version applies to provider cloud only",
        ),
        (
            "{provider: onprem, token: t, webhook_token: HOOK, url: 'https://x', apps: [a]}",
            "accounts.1: apps applies to provider cloud only",
        ),
        ("{token: t, app: a, apps: [a]}", "accounts.1: give either app or apps, not both"),
        (
            "{provider: 360dialog, token: t}",
            "accounts.1: webhook_token or webhook_token_env is required",
        ),
        (
            "{provider: onprem, token: t, webhook_token: short, url: 'https://x'}",
            "accounts.1: expected at least 16 characters",
        ),
    ],
)
def test_each_kind_checks_its_entries_as_before(tmp_path: Path, entry: str, message: str) -> None:
    text = f'apps:\n  a: {{secret: s}}\naccounts:\n  "1": {entry.replace("HOOK", HOOK)}\n'
    with pytest.raises(ConfigError, match=message):
        load_accounts_file(_file(tmp_path, text))


def test_the_file_is_not_read_without_the_plugins() -> None:
    with pytest.raises(TypeError, match="providers' plugins"):
        AccountsFile.model_validate({"accounts": {"1": {"token": "t"}}})
