"""`wa-media upload / url / download / delete` against the simulator, for each provider."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from graphsim import Simulator, SimulatorClient
from tests.sim_providers import APP, PHONE, add_media
from wa_media.cli import main
from wa_media.core.mediatypes import OGG_OPUS
from wa_media.core.provider import ProviderKind

JPEG = b"\xff\xd8\xff\xe0" + os.urandom(40_000)


def environment(sim: Simulator, kind: ProviderKind) -> dict[str, str]:
    if kind == "cloud":
        return {
            "WHATSAPP_PROVIDER": "cloud",
            "WHATSAPP_ACCESS_TOKEN": sim.token,
            "WHATSAPP_GRAPH_URL": sim.url,
            "WHATSAPP_API_VERSION": sim.version,
            "WHATSAPP_MEDIA_HOSTS": sim.media_host,
            "WHATSAPP_APP_ID": APP,
        }
    if kind == "360dialog":
        return {
            "WHATSAPP_PROVIDER": "360dialog",
            "D360_API_KEY": sim.d360_keys[0],
            "D360_URL": sim.d360_url,
        }
    return {
        "WHATSAPP_PROVIDER": "onprem",
        "WHATSAPP_ACCESS_TOKEN": sim.onprem_tokens[0],
        "WHATSAPP_ONPREM_URL": sim.onprem_url,
    }


def run(sim: Simulator, kind: ProviderKind, *args: str, **extra: str) -> Result:
    env = {"WHATSAPP_ACCOUNTS_FILE": "", **environment(sim, kind), **extra}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.jpg"
    path.write_bytes(JPEG)
    return path


@pytest.mark.parametrize("kind", ["cloud", "360dialog", "onprem"])
def test_upload_then_download_then_delete(
    sim: Simulator, client: SimulatorClient, kind: ProviderKind, photo: Path, tmp_path: Path
) -> None:
    uploaded = run(sim, kind, "upload", str(photo), "--phone-number-id", PHONE)
    assert uploaded.exit_code == 0, uploaded.output
    media_id = uploaded.stdout.strip().splitlines()[-1]

    target = tmp_path / "copy.jpg"
    fetched = run(sim, kind, "download", media_id, "-o", str(target))
    assert fetched.exit_code == 0, fetched.output
    assert target.read_bytes() == JPEG
    assert not (tmp_path / "copy.jpg.part").exists()

    deleted = run(sim, kind, "delete", media_id)
    assert deleted.exit_code == 0, deleted.output
    again = run(sim, kind, "download", media_id, "-o", str(tmp_path / "gone.jpg"))
    assert again.exit_code == 1
    assert "error:" in again.stderr
    assert not (tmp_path / "gone.jpg").exists()
    assert not (tmp_path / "gone.jpg.part").exists()


@pytest.mark.parametrize("kind", ["cloud", "360dialog"])
def test_url_prints_the_look_up(
    sim: Simulator, client: SimulatorClient, kind: ProviderKind
) -> None:
    media_id = add_media(client, kind, JPEG, "image/jpeg")
    result = run(sim, kind, "url", media_id)
    assert result.exit_code == 0, result.output
    lookup = json.loads(result.stdout)
    assert lookup["id"] == media_id
    assert lookup["sha256"] == hashlib.sha256(JPEG).hexdigest()
    assert lookup["url"].startswith("http://127.0.0.1")


def test_url_is_refused_clearly_by_onprem(sim: Simulator, client: SimulatorClient) -> None:
    result = run(sim, "onprem", "url", "b1c68f38-8734-4ad3-b4a1-ef0c10d683")
    assert result.exit_code == 1
    assert "On-Premises" in result.stderr


def test_upload_checks_type_and_size_before_sending(
    sim: Simulator, client: SimulatorClient, tmp_path: Path
) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + bytes(5 * 1024 * 1024))
    result = run(sim, "cloud", "upload", str(big), "--phone-number-id", PHONE)
    assert result.exit_code == 1
    assert "5 MB" in result.stderr or "5242880" in result.stderr
    odd = tmp_path / "notes.xyz"
    odd.write_bytes(b"hello")
    unknown = run(sim, "cloud", "upload", str(odd), "--phone-number-id", PHONE)
    assert unknown.exit_code == 2
    assert "--type" in unknown.stderr
    refused = run(sim, "cloud", "upload", str(odd), "--type", "application/zip")
    assert refused.exit_code == 1
    assert client.requests() == []


def test_ogg_audio_is_uploaded_only_as_opus(
    sim: Simulator, client: SimulatorClient, tmp_path: Path
) -> None:
    voice = tmp_path / "voice.ogg"
    voice.write_bytes(b"OggS" + os.urandom(1000))
    bare = run(sim, "cloud", "upload", str(voice), "--phone-number-id", PHONE)
    assert bare.exit_code == 1
    assert "audio/ogg; codecs=opus" in bare.stderr
    assert client.requests() == []

    typed = run(sim, "cloud", "upload", str(voice), "--type", OGG_OPUS, "--phone-number-id", PHONE)
    opus = voice.rename(tmp_path / "voice.opus")
    guessed = run(sim, "cloud", "upload", str(opus), "--phone-number-id", PHONE)

    assert (typed.exit_code, guessed.exit_code) == (0, 0), typed.output + guessed.output
    assert [r["status"] for r in client.requests() if r["op"] == "upload"] == [200, 200]


def test_resumable_upload_survives_an_interruption(
    sim: Simulator, client: SimulatorClient, tmp_path: Path
) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(os.urandom(300_000))
    client.add_fault(op="upload", media_id=clip.name, interrupt_after=100_000)
    result = run(sim, "cloud", "upload", "--resumable", str(clip))
    assert result.exit_code == 0, result.output
    [session] = client.upload_sessions()
    assert result.stdout.strip() == session["handle"]
    assert session["sha256"] == hashlib.sha256(clip.read_bytes()).hexdigest()


def test_rejected_credentials_exit_3(sim: Simulator, client: SimulatorClient) -> None:
    result = run(sim, "cloud", "delete", "123", WHATSAPP_ACCESS_TOKEN="wrong-token")
    assert result.exit_code == 3
    assert "wrong-token" not in result.output + result.stderr


def test_several_accounts_need_a_phone_number_id(sim: Simulator, tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(
        "accounts:\n"
        f'  "1": {{provider: 360dialog, token: k, url: "{sim.d360_url}",'
        " webhook_token: abcdefghijklmnopq}\n"
        f'  "2": {{provider: onprem, token: t, url: "{sim.onprem_url}",'
        " webhook_token: qrstuvwxyzabcdefg}\n"
    )
    env = {"WHATSAPP_ACCOUNTS_FILE": str(accounts)}
    result = CliRunner().invoke(main, ["delete", "x"], env=env)
    assert result.exit_code == 2
    assert "--phone-number-id" in result.stderr
    other = CliRunner().invoke(main, ["delete", "x", "--phone-number-id", "3"], env=env)
    assert other.exit_code == 2
    assert "no configured account serves 3" in other.stderr


def test_on_premises_has_no_media_urls_nor_resumable_uploads(
    sim: Simulator, client: SimulatorClient, photo: Path
) -> None:
    looked_up = run(sim, "onprem", "url", "any-id")
    assert looked_up.exit_code == 1
    assert looked_up.stdout == ""
    assert looked_up.stderr == (
        "error: the On-Premises API has no media URLs; download the media by id\n"
    )

    resumable = run(sim, "onprem", "upload", "--resumable", str(photo))
    assert resumable.exit_code == 1
    assert resumable.stdout == ""
    assert resumable.stderr.endswith(
        "error: the On-Premises API has no resumable uploads; use upload\n"
    )
    assert client.requests() == []
