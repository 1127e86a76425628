"""The learned trust engine inside the running exchange (both stores): verdicts
name the trust epoch behind them, a refit learns who is right from the
regulator's confirmations, the regulator alone sees and triggers it, epochs are
stored for every replica, and a carrier's "reassigned" notice starts a number's
history afresh."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import grpc
import pytest

from numrep.config import ServerConfig
from numrep.core.model import Role
from numrep.exchange import Exchange
from numrep.server import build_exchange
from numrep.signing.keys import generate_identity
from numrep.signing.labels import sign_label
from numrep.v1 import cases_pb2, common_pb2, publish_pb2

from numrep_client import ExchangeError, FlagToSend
from numrep_testkit import NUMBER, ROLE_PB, numbers, public_jwk_text

SPAM = numbers(40, start=100)
LEGIT = numbers(40, start=300)


def publish(client, *tokens: str) -> None:
    results = client.publish(list(tokens))
    assert all(r.status == publish_pb2.ITEM_STATUS_ACCEPTED for r in results), results


@pytest.fixture
def liar(federation, connect):
    """A second carrier that labels legitimate numbers as fraud (a competitor's)."""
    identity = generate_identity("carrier-south", Role.CARRIER, "EdDSA")
    connect(federation.regulator).register_participant(identity.participant_id, ROLE_PB[Role.CARRIER],
                                                       [public_jwk_text(identity)], "Carrier South")
    return identity


@pytest.fixture
def history(federation, connect, liar):
    """The regulator confirmed 40 fraud numbers and 40 legitimate ones; the honest
    carrier labelled the fraud ones, the liar the legitimate ones."""
    regulator, carrier, south = connect(federation.regulator), connect(federation.carrier), connect(liar)
    publish(regulator, *[sign_label(federation.regulator, n, "fraud") for n in SPAM],
            *[sign_label(federation.regulator, n, "legitimate") for n in LEGIT])
    publish(carrier, *[sign_label(federation.carrier, n, "fraud", 0.9) for n in SPAM])
    publish(south, *[sign_label(liar, n, "fraud", 0.9) for n in LEGIT])
    return regulator


def test_before_any_refit_verdicts_come_from_role_priors_epoch_0(federation, connect):
    carrier = connect(federation.carrier)
    publish(carrier, sign_label(federation.carrier, NUMBER, "fraud", 0.9))

    verdict = carrier.lookup(NUMBER)

    assert verdict.trust_epoch == 0
    assert "trust epoch 0" in verdict.explanation
    assert "its role's prior; not yet learned" in verdict.contributions[0].explanation


def test_a_refit_learns_that_the_liar_is_wrong_and_its_word_counts_less(federation, connect, liar, history):
    carrier, south = connect(federation.carrier), connect(liar)
    honest_number, smeared_number = numbers(2, start=700)
    before = [carrier.lookup(n) for n in (honest_number, smeared_number)]  # unknown numbers: no evidence yet
    assert all(v.action == common_pb2.ACTION_UNKNOWN for v in before)

    report = history.refit_trust()

    assert report.epoch == 1 and report.gold == 80
    learned = {s.source: s for s in report.sources}
    # a carrier starts from a strong prior (right 95% of the time); 40 confirmed mistakes bring it down
    assert learned["carrier-north"].spam_precision > 0.9
    assert learned["carrier-south"].spam_precision < 0.6
    assert "carrier-south's labels: spam reports right" in learned["carrier-south"].summary

    publish(carrier, sign_label(federation.carrier, honest_number, "fraud", 0.9))
    publish(south, sign_label(liar, smeared_number, "fraud", 0.9))
    honest, smeared = carrier.lookup(honest_number), carrier.lookup(smeared_number)
    assert honest.trust_epoch == smeared.trust_epoch == 1
    assert smeared.spam_probability < honest.spam_probability
    assert smeared.action == common_pb2.ACTION_ALLOW
    assert "trust epoch 1" in smeared.contributions[0].explanation


def test_a_refit_rewrites_the_stored_verdicts_it_changes(federation, connect, history):
    report = history.refit_trust()

    assert report.verdicts_changed > 0
    assert connect(federation.carrier).lookup(LEGIT[0]).trust_epoch == 1


def test_a_second_refit_on_the_same_data_changes_nothing(federation, connect, history):
    first = history.refit_trust()
    second = history.refit_trust()

    assert second.epoch == first.epoch + 1
    assert second.verdicts_changed == 0
    # the same fit, up to the decay of a few milliseconds' more age
    assert [(s.source, round(s.spam_precision, 6)) for s in second.sources] == [(s.source, round(s.spam_precision, 6)) for s in first.sources]


def test_only_the_regulator_sees_or_refits_the_learned_trust(federation, connect):
    for identity in (federation.carrier, federation.handset, federation.app):
        client = connect(identity)
        for call in (client.trust_report, client.refit_trust):
            with pytest.raises(ExchangeError) as caught:
                call()
            assert caught.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert connect(federation.regulator).trust_report().epoch == 0


def test_an_epoch_is_stored_and_another_replica_on_the_same_store_picks_it_up(server, federation, history):
    history.refit_trust()
    replica = Exchange(server.exchange.store, server.exchange.pseudonym)

    assert replica.trust_snapshot().epoch == 1
    assert replica.trust_snapshot().sources.keys() == server.exchange.trust_snapshot().sources.keys()


def test_only_the_newest_three_epochs_are_kept(tmp_path):
    # Each snapshot holds every app reporter's record (tens of MB in a large federation); only the newest is read.
    exchange = build_exchange(ServerConfig(data_dir=tmp_path / "exchange"))
    for _ in range(5):
        exchange.fit_trust()

    assert exchange.store.trust_epochs() == [5, 4, 3]
    assert exchange.trust_snapshot().epoch == 5
    exchange.store.close()


def test_a_replica_reads_a_snapshot_only_when_a_newer_epoch_is_stored(server, federation, history, monkeypatch):
    # A snapshot holds every app reporter's record (tens of MB); replicas look for a new epoch every minute.
    history.refit_trust()
    store = server.exchange.store
    replica = Exchange(store, server.exchange.pseudonym)
    reads: list[int] = []
    read = store.latest_trust_snapshot
    monkeypatch.setattr(store, "latest_trust_snapshot", lambda: reads.append(1) or read())

    assert replica.reload_trust() is False
    assert reads == []

    history.refit_trust()  # which the server that ran it reads in too
    reads.clear()
    assert replica.reload_trust() is True
    assert (replica.trust_snapshot().epoch, len(reads)) == (2, 1)


def test_a_carriers_reassigned_notice_starts_the_numbers_history_afresh(federation, connect):
    carrier = connect(federation.carrier)
    an_hour_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    publish(connect(federation.regulator), sign_label(federation.regulator, NUMBER, "fraud", issued_at=an_hour_ago))
    assert carrier.lookup(NUMBER).action == common_pb2.ACTION_BLOCK

    publish(carrier, sign_label(federation.carrier, NUMBER, "reassigned"))

    verdict = carrier.lookup(NUMBER)
    assert verdict.action == common_pb2.ACTION_UNKNOWN
    assert verdict.contributions == []


def test_only_carriers_and_the_regulator_may_say_a_number_was_reassigned(federation, connect):
    app = connect(federation.app)

    [result] = app.publish([sign_label(federation.app, NUMBER, "reassigned")])

    assert result.status == publish_pb2.ITEM_STATUS_REJECTED
    assert result.reason == "category_not_allowed"
    assert "only carriers and the regulator" in result.message
    flagged = app.submit_flags([FlagToSend(NUMBER, "reassigned", "user-1")])
    assert flagged.accepted == 0 and flagged.results[0].reason == "category_not_allowed"


def test_numrep_trust_show_and_refit_run_locally_on_a_data_directory(tmp_path):
    data_dir = tmp_path / "exchange"
    local = build_exchange(ServerConfig(data_dir=data_dir))
    regulator = generate_identity("ftc", Role.REGULATOR, "EdDSA")
    carrier = generate_identity("carrier-north", Role.CARRIER, "EdDSA")
    local.register_participant("ftc", Role.REGULATOR, "Regulator", [public_jwk_text(regulator)])
    local.register_participant("carrier-north", Role.CARRIER, "North", [public_jwk_text(carrier)])
    reg, car = local.participant("ftc"), local.participant("carrier-north")
    local.publish(reg, [sign_label(regulator, n, "fraud") for n in SPAM])
    local.publish(car, [sign_label(carrier, n, "fraud", 0.9) for n in SPAM])
    local.store.close()

    def numrep(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "numrep.cli.main", *args, "--data-dir", str(data_dir)],
                              capture_output=True, text=True, timeout=120)

    shown = numrep("trust", "show")
    assert shown.returncode == 0, shown.stderr
    assert "trust epoch 0: nothing fitted yet" in shown.stdout

    refit = numrep("trust", "refit", "--json")
    assert refit.returncode == 0, refit.stderr
    report = json.loads(refit.stdout)
    assert report["epoch"] == "1" and report["labels"] == "80"
    assert {s["source"] for s in report["sources"]} >= {"carrier-north", "ftc"}

    shown = numrep("trust", "show")
    assert "trust epoch 1, fitted" in shown.stdout
    assert "carrier-north's labels: spam reports right" in shown.stdout


def test_confirmed_complaints_and_upheld_disputes_anchor_the_fit_as_known_truth(federation, connect):
    carrier, regulator = connect(federation.carrier), connect(federation.regulator)
    complained, disputed = numbers(2, start=800)
    publish(carrier, sign_label(federation.carrier, complained, "fraud", 0.9), sign_label(federation.carrier, disputed, "fraud", 0.9))
    complaint = carrier.file_complaint(complained, "fraud.impersonation", "said he was from the tax office")
    dispute = carrier.file_dispute(disputed, "owner@example.org", "this is our pharmacy's line")

    assert regulator.refit_trust().gold == 0
    regulator.resolve_case(complaint.case_id, cases_pb2.CASE_STATUS_CONFIRMED, "confirmed")
    regulator.resolve_case(dispute.case_id, cases_pb2.CASE_STATUS_UPHELD, "the label was wrong")

    report = regulator.refit_trust()
    assert report.gold == 2
    assert report.labels == 2  # the label the upheld dispute retracted still judges its publisher
    [north] = [s for s in report.sources if s.source == "carrier-north"]
    assert north.spam_votes == pytest.approx(1.8)  # both of its labels, right once and wrong once
