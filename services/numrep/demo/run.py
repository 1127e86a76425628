"""``numrep demo``: a small federation on the embedded store, seeded from real
complaints through the real RPCs, then left serving for the CLI."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import shutil
import signal
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from numrep.api.convert import ROLE_TO_PB
from numrep.cli.output import trust_text, verdict_text
from numrep.config import ServerConfig
from numrep.core.errors import AlreadyExists
from numrep.core.model import Role
from numrep.demo.complaints import ComplaintSet, load
from numrep.demo.consent import show_consent
from numrep.server import RunningServer, start_server
from numrep.signing.keys import Identity, generate_identity
from numrep.signing.labels import sign_label
from numrep.telemetry import Telemetry
from numrep_client import ExchangeClient, ExchangeError, FlagToSend, HandsetLabelStore, sync_handset

FEDERATION = [
    ("regulator", Role.REGULATOR, "National telecom regulator", "EdDSA"),
    ("carrier-east", Role.CARRIER, "East Mobile (carrier)", "ES256"),
    ("carrier-west", Role.CARRIER, "West Telecom (carrier)", "EdDSA"),
    ("handset-acme", Role.HANDSET_VENDOR, "Acme Phones (handset vendor)", "EdDSA"),
    ("app-callguard", Role.APP_VENDOR, "CallGuard (caller-ID app)", "EdDSA"),
    ("app-noisy", Role.APP_VENDOR, "NoisyDialer (careless app)", "EdDSA"),
]
# Fictional numbers (555-01xx is reserved for fiction) standing for legitimate callers.
LEGITIMATE = ["+12025550100", "+12025550101", "+12025550102", "+13125550103", "+14155550104"]
BATCH = 500
CONFIRMED = 300  # of the most complained-about numbers, the regulator confirms this many
# Businesses' lines (the fictional 555-01XX ranges): carriers vouch for them, careless apps flag some.
BUSINESSES = [f"+1{area}555{line:04d}" for area in ("202", "312", "415", "617", "212", "305") for line in range(110, 200)]
DEMO_HTTP_LISTEN = "127.0.0.1:8080"  # the web page, unless --http / NUMREP_HTTP_LISTEN says otherwise


@dataclass
class Federation:
    identities: dict[str, Identity]
    address: str

    def client(self, participant_id: str) -> ExchangeClient:
        return ExchangeClient(self.address, self.identities[participant_id])


def run_demo(config: ServerConfig, fresh: bool, numbers: int, keep_serving: bool, telemetry: Telemetry | None = None) -> int:
    if fresh and config.data_dir.exists():
        shutil.rmtree(config.data_dir)
    if keep_serving and not config.http_listen:  # the demo shows the public web page too
        config = dataclasses.replace(config, http_listen=DEMO_HTTP_LISTEN)
    return asyncio.run(_run(config, numbers, keep_serving, telemetry))


async def _run(config: ServerConfig, numbers: int, keep_serving: bool, telemetry: Telemetry | None) -> int:
    running = await start_server(config, telemetry=telemetry, tune_gc=keep_serving)
    try:
        federation = await asyncio.to_thread(_set_up, running, config.data_dir)
        await asyncio.to_thread(_walkthrough, federation, config.data_dir, numbers)
        if keep_serving:
            _print_try_it(federation, config.data_dir)
            if running.web is not None:
                print(f"  Or open the public web page (lookup, complaints, disputes): {running.web.url}", flush=True)
            await _wait_for_signal()
    finally:
        await running.stop(5)
    return 0


def _set_up(running: RunningServer, data_dir: Path) -> Federation:
    keys_dir = data_dir / "identities"
    identities: dict[str, Identity] = {}
    for pid, role, _, alg in FEDERATION:
        path = keys_dir / f"{pid}.json"
        if not path.exists():
            generate_identity(pid, role, alg).save(path)
        identities[pid] = Identity.load(path)
    federation = Federation(identities, running.address)
    regulator = identities["regulator"]
    try:  # the operator registers the regulator locally; the regulator does the rest over gRPC
        running.exchange.register_participant("regulator", Role.REGULATOR, FEDERATION[0][2], [json.dumps(regulator.public_jwk())])
    except AlreadyExists:
        pass
    with federation.client("regulator") as client:
        for pid, role, name, _ in FEDERATION[1:]:
            try:
                client.register_participant(pid, ROLE_TO_PB[role], [json.dumps(identities[pid].public_jwk())], name)
            except ExchangeError as exc:
                if exc.code.name != "ALREADY_EXISTS":
                    raise
    _heading("1. The federation")
    for pid, role, name, alg in FEDERATION:
        print(f"  {pid:<14} {role.value:<15} {name}  [{alg}]")
    return federation


def _walkthrough(federation: Federation, data_dir: Path, count: int) -> None:
    complaints = load()
    seeded = _seed(federation, complaints, count)
    _a_call_arrives(federation, seeded)
    _handset_sync(federation, data_dir)
    _trust_is_learned(federation, seeded)
    _flags_move_a_verdict(federation, seeded)
    show_consent(federation.client, federation.identities, _heading)


def _seed(federation: Federation, complaints: ComplaintSet, count: int) -> dict[str, list]:
    _heading("2. Seeding from real FTC Do-Not-Call complaints (2021-07-07)")
    started = time.monotonic()
    grouped = complaints.by_number()
    chosen = sorted(grouped, key=lambda n: (-len(grouped[n]), n))[:count]
    latest = max(c.when for c in complaints.complaints)
    shift = datetime.now(timezone.utc) - timedelta(days=1) - latest  # treat the complaints as fresh
    print(f"  {complaints.rows} complaints read, {complaints.invalid_numbers} with impossible numbers skipped, "
          f"{len(grouped)} distinct numbers; seeding the {len(chosen)} most complained-about")
    print("  (complaint times are shifted to the past day, so time decay treats them as fresh)")

    east, west = federation.identities["carrier-east"], federation.identities["carrier-west"]
    plan: dict[str, list[str]] = {"carrier-east": [], "carrier-west": [], "regulator": []}
    for number in chosen:
        group = grouped[number]
        top = ComplaintSet.top_category(group)
        if len(group) >= 2:  # carrier-east labels numbers its network sees complained about repeatedly
            plan["carrier-east"].append(sign_label(east, number, top, min(1.0, 0.5 + 0.1 * len(group)), evidence=f"{len(group)} complaints"))
        if any(c.robocall for c in group):  # carrier-west detects recorded-message traffic
            plan["carrier-west"].append(sign_label(west, number, top, 0.7, evidence="robocall traffic pattern"))
    plan["carrier-east"] += [sign_label(east, n, "legitimate", 0.9, evidence="verified business line") for n in LEGITIMATE + BUSINESSES]
    plan["carrier-west"] += [sign_label(west, n, "legitimate", 0.8, evidence="registered enterprise trunk") for n in BUSINESSES[::2]]
    for pid, tokens in plan.items():
        if tokens:
            with federation.client(pid) as client:
                accepted = sum(r.status == 1 for i in range(0, len(tokens), BATCH) for r in client.publish(tokens[i:i + BATCH]))
            print(f"  {pid:<14} published {accepted} signed labels")

    flags = [FlagToSend(c.number, c.category, "u-" + c.consumer, c.when + shift) for n in chosen for c in grouped[n]]
    _send_flags(federation, "app-callguard", flags)
    rng = random.Random(7)  # the careless app flags at random, legitimate numbers included
    noisy = [FlagToSend(rng.choice(LEGITIMATE + BUSINESSES + chosen[:50]), rng.choice(["fraud", "marketing"]), f"n-{i}") for i in range(200)]
    _send_flags(federation, "app-noisy", noisy)
    print(f"  seeded in {time.monotonic() - started:.1f} s")
    return {"chosen": chosen, "grouped": grouped}


def _send_flags(federation: Federation, app: str, flags: list[FlagToSend]) -> None:
    accepted = 0
    with federation.client(app) as client:
        for i in range(0, len(flags), BATCH):
            accepted += client.submit_flags(flags[i:i + BATCH], batch_id=f"demo-{app}-{i}").accepted
    print(f"  {app:<14} pushed {accepted} user flags")


def _a_call_arrives(federation: Federation, seeded: dict[str, list]) -> None:
    _heading("3. A call arrives: carrier-west asks about the caller inside call set-up")
    worst = seeded["chosen"][0]
    with federation.client("carrier-west") as client:
        for number in (worst, LEGITIMATE[0]):
            started = time.perf_counter()
            verdict = client.lookup(number)
            elapsed = (time.perf_counter() - started) * 1000
            print(verdict_text(verdict))
            print(f"  (answered in {elapsed:.1f} ms; cache until {verdict.expires_at.ToDatetime():%H:%M:%S} UTC)\n")


def _handset_sync(federation: Federation, data_dir: Path) -> None:
    _heading("4. Acme Phones syncs the label set to its handsets")
    store = HandsetLabelStore(data_dir / "handset-acme.sqlite3")
    with federation.client("handset-acme") as handset:
        report = sync_handset(handset, store)
        print(f"  first sync: {report.chunks} chunks, {len(store.numbers)} numbers to warn about or block, "
              f"{report.labels_verified} signed labels verified offline, {len(report.labels_dropped)} dropped")
        mistaken = "+16175550105"
        with federation.client("carrier-east") as east:
            label_id = east.publish([sign_label(federation.identities["carrier-east"], mistaken, "fraud", 1.0)])[0].id
            delta = sync_handset(handset, store)
            print(f"  carrier-east labels {mistaken} as fraud -> delta sync: {delta.upserts} number added "
                  f"({store.numbers[mistaken]['action']})" if mistaken in store.numbers else "  (label not listed)")
            east.retract([label_id], reason="published by mistake")
        delta = sync_handset(handset, store)
        print(f"  carrier-east retracts it -> delta sync: {delta.tombstones} tombstone; "
              f"held on the handset now: {mistaken in store.numbers}")
    blocks = [entry for entry in store.block_list() if entry[1] == "block"]
    print(f"  the handset's block list holds {len(blocks)} numbers, e.g. {', '.join(n for n, _, _ in blocks[:3])}")


def _trust_is_learned(federation: Federation, seeded: dict[str, list]) -> None:
    _heading("5. The regulator confirms numbers; the trust engine learns whom to believe")
    grouped, chosen = seeded["grouped"], seeded["chosen"]
    regulator = federation.identities["regulator"]
    confirmed = chosen[:CONFIRMED]
    seeded["confirmed"] = confirmed
    tokens = [sign_label(regulator, n, ComplaintSet.top_category(grouped[n]), 1.0, evidence="confirmed by investigation") for n in confirmed]
    legitimate = LEGITIMATE + BUSINESSES[::3]
    tokens += [sign_label(regulator, n, "legitimate", 1.0, evidence="registered business line") for n in legitimate]
    with federation.client("regulator") as client:
        for i in range(0, len(tokens), BATCH):
            client.publish(tokens[i:i + BATCH])
        print(f"  the regulator confirms {len(confirmed)} numbers as spam and {len(legitimate)} as legitimate (gold evidence)")
        started = time.monotonic()
        report = client.refit_trust()
    print(f"  refit in {time.monotonic() - started:.1f} s:")
    print(_indent(trust_text(report)))


def _flags_move_a_verdict(federation: Federation, seeded: dict[str, list]) -> None:
    _heading("6. A swarm of new app accounts cannot move a number; a second participant can")
    grouped = seeded["grouped"]
    # A number only one consumer complained about and no carrier labelled (or a fresh one).
    quiet = next((n for n in reversed(seeded["chosen"]) if len(grouped[n]) == 1 and not grouped[n][0].robocall), "+16175550106")
    with federation.client("carrier-east") as carrier, federation.client("app-callguard") as app:
        print("  before:\n" + _indent(verdict_text(carrier.lookup(quiet))))
        swarm = [FlagToSend(quiet, "fraud.impersonation", f"new-account-{i}") for i in range(40)]
        app.submit_flags(swarm, batch_id=f"demo-swarm-{quiet}")
        print("  after 40 brand-new CallGuard accounts flag it (together they count as one new reporter):\n"
              + _indent(verdict_text(carrier.lookup(quiet))))
        carrier.publish([sign_label(federation.identities["carrier-east"], quiet, "fraud.impersonation", 0.9,
                                    evidence="spoofed-caller traffic pattern")])
        print("  after carrier-east's network sees it too and labels it:\n" + _indent(verdict_text(carrier.lookup(quiet))))


def _print_try_it(federation: Federation, data_dir: Path) -> None:
    ids = data_dir / "identities"
    _heading(f"The exchange keeps serving on {federation.address}  (Ctrl-C to stop)")
    print("  Try, in another terminal (from the repo, with .venv/bin on PATH):")
    print(f"    numrep lookup --server {federation.address} --identity {ids}/carrier-west.json {LEGITIMATE[0]} '(202) 555-0143'")
    print(f"    numrep publish --server {federation.address} --identity {ids}/carrier-east.json +12025550143 fraud.one_ring")
    print(f"    numrep flag --server {federation.address} --identity {ids}/app-callguard.json +12025550143 fraud --reporter u-123")
    print(f"    numrep sync --server {federation.address} --identity {ids}/handset-acme.json --out /tmp/handset.sqlite3")
    print(f"    numrep participants list --server {federation.address} --identity {ids}/regulator.json")
    print("    grpcurl -plaintext " + federation.address + " list   # reflection is on", flush=True)


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def _heading(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())
