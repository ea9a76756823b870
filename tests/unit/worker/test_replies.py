"""`Replier` against in-memory fakes of the reply ledger, the rates and the provider: every
outcome, and what every error the provider or the ledger can raise comes to."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tests.unit.fakes import (
    PHONE,
    FakeDirectory,
    FakeLedger,
    FakeProvider,
    FakeRates,
    every_error,
    settings,
)
from wa_media.core.errors import (
    ArchiveError,
    BusyError,
    InvalidId,
    NoAccount,
    PermanentError,
    RedisUnavailable,
    RetryableError,
    StorageError,
)
from wa_media.core.jobs import ReplyJob
from wa_media.core.records import LedgerEntry, ReplyRef
from worker.replies import Replier

ERRORS = every_error()
TEXT = "Your file is too big."


def reply_job(wamid: str = "wamid.1", **changes: object) -> ReplyJob:
    values: dict[str, object] = {
        "phone_number_id": PHONE,
        "wamid": wamid,
        "to": "15550001",
        "error_code": 131052,
        **changes,
    }
    return ReplyJob.model_validate(values)


@dataclass
class World:
    ledger: FakeLedger = field(default_factory=FakeLedger)
    rates: FakeRates = field(default_factory=FakeRates)
    directory: FakeDirectory = field(default_factory=FakeDirectory)

    def __post_init__(self) -> None:
        self.replier = Replier(
            settings(too_big_reply_text=TEXT), self.directory, self.ledger, self.rates
        )

    @property
    def provider(self) -> FakeProvider:
        provider = self.directory.clients.provider
        assert isinstance(provider, FakeProvider)
        return provider

    def entry(self, job: ReplyJob) -> str | None:
        return self.ledger.entries.get(ReplyRef.of(job).key)


@pytest.fixture
def world() -> World:
    return World()


def test_a_warning_is_sent_once_and_recorded(world: World) -> None:
    job = reply_job()
    assert world.replier.reply(job) == "sent"
    assert world.provider.texts == [(PHONE, "15550001", TEXT)]
    assert world.entry(job) == "sent"
    # Delivered twice, it is not sent twice.
    assert world.replier.reply(job) == "already_sent"
    assert len(world.provider.texts) == 1


def test_a_customer_known_by_bsuid_is_warned_by_it(world: World) -> None:
    job = reply_job(to=None, recipient="US.13491208655302741918")
    assert world.replier.reply(job) == "sent"
    assert world.provider.texts == [(PHONE, "US.13491208655302741918", TEXT)]


@pytest.mark.parametrize("entry", ["sent", "failed: refused", "dropped: recipient_rate"])
@pytest.mark.parametrize("legacy", [False, True], ids=["account", "previous-release"])
def test_a_settled_warning_is_already_sent(world: World, entry: str, legacy: bool) -> None:
    job = reply_job()
    ref = ReplyRef.of(job)
    world.ledger.entries[ref.legacy_key if legacy else ref.key] = entry
    assert world.replier.reply(job) == "already_sent"
    assert world.provider.texts == []


def test_a_warning_being_sent_waits(world: World) -> None:
    job = reply_job()
    world.ledger.entries[ReplyRef.of(job).key] = "sending"
    with pytest.raises(BusyError) as raised:
        world.replier.reply(job)
    assert raised.value.retry_after == 60
    assert world.provider.texts == []


def test_an_address_that_is_no_phone_or_bsuid_is_dropped(world: World) -> None:
    job = reply_job(to="not a number")
    assert world.replier.reply(job) == "invalid_recipient"
    assert world.entry(job) == "dropped: invalid_recipient"
    assert world.provider.texts == []
    assert world.rates.slots == {}


def test_a_job_naming_nobody_is_invalid(world: World) -> None:
    with pytest.raises(InvalidId):
        world.replier.reply(reply_job(to=None))
    assert world.ledger.entries == {}


def test_a_phone_number_id_that_cannot_form_a_path_is_invalid(world: World) -> None:
    with pytest.raises(InvalidId):
        world.replier.reply(reply_job(phone_number_id="../x"))


def test_an_unknown_number_waits_for_an_operator(world: World) -> None:
    with pytest.raises(NoAccount):
        world.replier.reply(reply_job(phone_number_id="999"))
    assert world.ledger.entries == {}


def test_a_customer_warned_lately_is_not_warned_again(world: World) -> None:
    assert world.replier.reply(reply_job("wamid.1")) == "sent"
    second = reply_job("wamid.2")
    assert world.replier.reply(second) == "recipient_rate"
    assert world.entry(second) == "dropped: recipient_rate"
    assert len(world.provider.texts) == 1


def test_an_account_over_its_rate_drops_the_warning() -> None:
    world = World(rates=FakeRates(per_minute=1))
    assert world.replier.reply(reply_job("wamid.1", to="15550001")) == "sent"
    other = reply_job("wamid.2", to="15550002")
    assert world.replier.reply(other) == "account_rate"
    assert world.entry(other) == "dropped: account_rate"


@pytest.mark.parametrize("error", ERRORS, ids=lambda cls: cls.__name__)
def test_every_error_of_the_provider_has_its_outcome(
    world: World, error: type[ArchiveError]
) -> None:
    world.provider.fail["send_text"] = error("it failed")
    job = reply_job()

    with pytest.raises(error):
        world.replier.reply(job)

    slot = world.rates.slots.get((PHONE, "15550001"))
    if issubclass(error, PermanentError):
        # Never delivered: recorded as failed, and the customer's slot freed.
        assert world.entry(job) == "failed: it failed"
        assert slot is None
    elif issubclass(error, RetryableError):
        # The claim is given back for the retry, which keeps the slot.
        assert world.entry(job) is None
        assert slot == "wamid.1"
    else:
        # Unclassified: the claim runs out by itself (claim_ttl), and the sweep waits for it.
        assert world.entry(job) == "sending"


@pytest.mark.parametrize("operation", ["claim", "settle"])
def test_the_ledger_failing_reaches_the_task(world: World, operation: str) -> None:
    world.ledger.fail[operation] = RedisUnavailable("Redis reply claim failed: ConnectionError")
    with pytest.raises(RedisUnavailable):
        world.replier.reply(reply_job())


def test_the_rates_failing_to_free_a_slot_changes_nothing(world: World) -> None:
    world.provider.fail["send_text"] = PermanentError("refused")
    world.rates.fail["forget"] = StorageError("Redis reply rate failed: ConnectionError")
    with pytest.raises(PermanentError):
        world.replier.reply(reply_job())
    assert world.entry(reply_job()) == "failed: refused"


@pytest.mark.parametrize(
    ("entry", "text"),
    [
        (LedgerEntry.sent(), "sent"),
        (LedgerEntry.failed("refused (131047)"), "failed: refused (131047)"),
        (LedgerEntry.dropped("recipient_rate"), "dropped: recipient_rate"),
        (LedgerEntry("sending"), "sending"),
    ],
)
def test_ledger_entries_are_written_as_the_previous_release_wrote_them(
    entry: LedgerEntry, text: str
) -> None:
    assert entry.text == text
    assert LedgerEntry.parse(text) == entry
    assert LedgerEntry.parse(text.encode()) == entry
