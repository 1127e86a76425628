"""Fresh data for every run: keys, a registered federation, FTC-shaped numbers,
realistic verdicts and labels, written straight through the store.

Everything lives under a temporary directory made per run; nothing is reused
between runs.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import json
import os
import re
import sqlite3
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Sequence

from numrep.core.errors import InvalidNumber
from numrep.core.model import Action, Evidence, FlagTally, Label, Participant, PublicKeyRecord, Role, Verdict
from numrep.core.numbers import normalize
from numrep.core.reconcile import RoleWeightedReconciler
from numrep.signing.keys import Identity, generate_identity
from numrep.signing.labels import LABEL_TYPE, sign_label
from numrep.store.sqlite import DB_FILE, SqliteStore

import numrep

FTC_CSV = Path(numrep.__file__).resolve().parent / "demo" / "data" / "ftc-dnc-complaints-2021-07-07.csv"
AUDIENCE = "numrep"


# --- identities -------------------------------------------------------------------
@dataclass(frozen=True)
class Federation:
    regulator: Identity
    carrier_ed: Identity   # EdDSA carrier
    carrier_es: Identity   # ES256 carrier
    handset: Identity      # EdDSA handset vendor
    app: Identity          # EdDSA app vendor

    @property
    def members(self) -> tuple[Identity, ...]:
        return (self.regulator, self.carrier_ed, self.carrier_es, self.handset, self.app)

    def participants(self, now: datetime | None = None) -> dict[str, Participant]:
        when = now or datetime.now(timezone.utc) - timedelta(hours=1)
        return {
            m.participant_id: Participant(m.participant_id, m.role, m.participant_id.title(),
                                          (PublicKeyRecord(m.kid, public_jwk_text(m), when),))
            for m in self.members
        }


def public_jwk_text(identity: Identity) -> str:
    return json.dumps(identity.public_jwk())


def make_federation() -> Federation:
    return Federation(
        regulator=generate_identity("ftc", Role.REGULATOR, "EdDSA"),
        carrier_ed=generate_identity("carrier-north", Role.CARRIER, "EdDSA"),
        carrier_es=generate_identity("carrier-south", Role.CARRIER, "ES256"),
        handset=generate_identity("handset-co", Role.HANDSET_VENDOR, "EdDSA"),
        app=generate_identity("blocker-app", Role.APP_VENDOR, "EdDSA"),
    )


def register(store: SqliteStore | object, fed: Federation) -> None:
    """Register every member directly in the store (the local-operator path)."""
    for participant in fed.participants().values():
        store.add_participant(participant)  # type: ignore[attr-defined]


# --- numbers --------------------------------------------------------------------------
def _valid(number: str) -> bool:
    try:
        return normalize(number) == number
    except InvalidNumber:
        return False


def ftc_area_codes() -> list[str]:
    """US area codes that occur in the FTC Do-Not-Call complaint sample (the
    consumers' and the callers'), keeping only those libphonenumber accepts."""
    codes: set[str] = set()
    with open(FTC_CSV, newline="") as handle:
        for row in csv.DictReader(handle):
            code = (row.get("Consumer_Area_Code") or "").strip()
            if len(code) == 3 and code.isdigit():
                codes.add(code)
            digits = re.sub(r"\D", "", row.get("Company_Phone_Number") or "")
            if len(digits) == 11 and digits.startswith("1"):
                digits = digits[1:]
            if len(digits) == 10:
                codes.add(digits[:3])
    return [c for c in sorted(codes) if c[0] in "23456789" and _valid(f"+1{c}2345678")]


_STRIDE = 2_654_435_761  # prime; a bijection of [0, size) when coprime with size


class NumberSpace:
    """Distinct, scattered, valid US numbers: ``number(i)`` for i in [0, size).
    Area codes come from the FTC sample; exchange codes 200-999; any line."""

    def __init__(self, area_codes: Sequence[str]) -> None:
        self.codes = list(area_codes)
        self.size = len(self.codes) * 8_000_000
        if self.size % _STRIDE == 0:
            raise ValueError("stride not coprime")

    def number(self, index: int) -> str:
        k = (index * _STRIDE + 7_919) % self.size
        code, rest = divmod(k, 8_000_000)
        nxx, line = divmod(rest, 10_000)
        return f"+1{self.codes[code]}{nxx + 200}{line:04d}"

    def numbers(self, start: int, stop: int) -> list[str]:
        return [self.number(i) for i in range(start, stop)]


def spot_check(numbers: Sequence[str], sample: int = 300) -> float:
    """Fraction of a sample of ``numbers`` that the exchange's own normaliser accepts as E.164."""
    if not numbers:
        return 1.0
    step = max(1, len(numbers) // sample)
    picked = numbers[::step][:sample]
    return sum(_valid(n) for n in picked) / len(picked)


# --- verdicts ---------------------------------------------------------------------------
def verdict_templates(fed: Federation, now: datetime | None = None) -> list[Verdict]:
    """Verdicts as the exchange's own reconciler computes them for typical
    evidence (a regulator and a carrier label; a carrier label plus app flags;
    app flags only), to be copied onto many numbers."""
    now = now or datetime.now(timezone.utc)
    participants = fed.participants(now - timedelta(days=1))
    reconciler = RoleWeightedReconciler(participants.get)

    def label(issuer: Identity, cat: str, conf: float, days_ago: int) -> Label:
        issued = now - timedelta(days=days_ago)
        jti = uuid.uuid4().hex
        return Label(f"{issuer.participant_id}/{jti}", issuer.participant_id, "+12025550143", cat, conf,
                     issued, issued + timedelta(days=90), "")

    flags = FlagTally(fed.app.participant_id, (("marketing.robocall", 7), ("fraud.impersonation", 2)), now - timedelta(hours=3))
    evidences = [
        Evidence("+12025550143", (label(fed.regulator, "fraud.impersonation", 0.95, 3), label(fed.carrier_ed, "fraud.impersonation", 0.9, 1))),
        Evidence("+12025550143", (label(fed.carrier_es, "marketing.robocall", 0.8, 10),), (flags,)),
        Evidence("+12025550143", (), (flags,)),
    ]
    return [reconciler.reconcile(e, now, 0) for e in evidences]


def verdict_for(template: Verdict, number: str) -> Verdict:
    return dataclasses.replace(template, number=number)


# --- labels ----------------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class LabelShape:
    """Enough to build labels of one publisher without its private key."""

    issuer: str
    kid: str
    alg: str

    def header(self) -> str:
        # PyJWT writes the header keys sorted: alg, kid, typ.
        return _b64(json.dumps({"alg": self.alg, "kid": self.kid, "typ": LABEL_TYPE}, separators=(",", ":")).encode())


def shaped_label(shape: LabelShape, number: str, index: int, issued: datetime, signature_len: int = 64) -> Label:
    """A label whose token has the real header and claims (and so the real size)
    but a placeholder signature. Used only where nobody verifies (the bulk
    snapshot streamed by Sync: the exchange stores tokens verbatim and does not
    re-verify them when it hands them on)."""
    jti = f"{index:032x}"
    iat = int(issued.timestamp())
    exp = iat + 90 * 86400
    claims = {"iss": shape.issuer, "num": number, "cat": "fraud.impersonation", "conf": 0.9, "iat": iat, "exp": exp, "jti": jti}
    token = f"{shape.header()}.{_b64(json.dumps(claims, separators=(',', ':')).encode())}.{_b64(os.urandom(signature_len))}"
    return Label(f"{shape.issuer}/{jti}", shape.issuer, number, "fraud.impersonation", 0.9,
                 datetime.fromtimestamp(iat, timezone.utc), datetime.fromtimestamp(exp, timezone.utc), token)


def signed_label(identity: Identity, number: str, index: int, issued: datetime, category: str = "fraud.impersonation",
                 confidence: float = 0.9) -> Label:
    """A really signed label and the ``Label`` the exchange would store for it."""
    jti = f"{index:032x}"
    issued = issued.replace(microsecond=0)
    token = sign_label(identity, number, category, confidence, issued_at=issued, jti=jti)
    return Label(f"{identity.participant_id}/{jti}", identity.participant_id, number, category, confidence,
                 issued, issued + timedelta(days=90), token)


def label_verdict(template: Verdict, label: Label) -> Verdict:
    """``template`` on ``label.number`` with its first contribution naming ``label``."""
    first = dataclasses.replace(template.contributions[0], participant_id=label.issuer, label_id=label.id)
    return dataclasses.replace(template, number=label.number, contributions=(first, *template.contributions[1:]))


# --- building a store ---------------------------------------------------------------------
@dataclass(frozen=True)
class ShardSpec:
    """What a generator process writes: numbers ``space.number(i)`` for i in
    [start, stop) as verdicts (``template``), optionally each with one label."""

    path: str
    area_codes: tuple[str, ...]
    start: int
    stop: int
    templates: tuple[Verdict, ...]
    batch: int
    label_shape: LabelShape | None = None


def _write_shard(spec: ShardSpec) -> None:
    space = NumberSpace(spec.area_codes)
    store = SqliteStore(Path(spec.path))
    issued = datetime.now(timezone.utc) - timedelta(days=1)
    try:
        for low in range(spec.start, spec.stop, spec.batch):
            high = min(spec.stop, low + spec.batch)
            numbers = space.numbers(low, high)
            if spec.label_shape is not None:
                labels = [shaped_label(spec.label_shape, n, i, issued) for i, n in zip(range(low, high), numbers)]
                store.add_labels(labels)
                updates = [(label_verdict(spec.templates[i % len(spec.templates)], lb), ()) for i, lb in zip(range(low, high), labels)]
            else:
                updates = [(verdict_for(spec.templates[i % len(spec.templates)], n), ()) for i, n in zip(range(low, high), numbers)]
            store.put_verdicts(updates)
    finally:
        store.close()


def build_store(
    data_dir: Path,
    fed: Federation,
    count: int,
    *,
    area_codes: Sequence[str],
    templates: Sequence[Verdict],
    label_shape: LabelShape | None = None,
    workers: int = 2,
    batch: int = 20_000,
    extra: Callable[[SqliteStore], None] | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> dict:
    """A SQLite data directory holding ``count`` verdicts (and labels), written
    through ``SqliteStore.put_verdicts`` / ``add_labels`` in large batches.

    With ``workers`` > 1 each worker process writes its slice through its own
    ``SqliteStore`` into a shard file, and the shards are then copied into the
    exchange's file with ``INSERT ... SELECT`` (the rows are exactly what the
    store wrote; only the copy is done by SQLite itself).
    """
    from benchmarks._procs import CTX

    started = time.perf_counter()
    data_dir.mkdir(parents=True, exist_ok=True)
    main = SqliteStore.in_directory(data_dir)
    register(main, fed)
    if extra is not None:
        extra(main)
    main.close()
    workers = max(1, min(workers, count // 50_000 or 1))
    bounds = [count * w // workers for w in range(workers + 1)]
    shards = [
        ShardSpec(str(data_dir / f"shard{w}.sqlite3"), tuple(area_codes), bounds[w], bounds[w + 1], tuple(templates), batch, label_shape)
        for w in range(workers)
    ]
    if workers == 1:
        shards = [dataclasses.replace(shards[0], path=str(data_dir / DB_FILE))]
        _write_shard(shards[0])
    else:
        procs = [CTX.Process(target=_write_shard, args=(s,), name=f"bench-shard{i}", daemon=True) for i, s in enumerate(shards)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
            if p.exitcode != 0:
                raise RuntimeError(f"data generator {p.name} failed with exit code {p.exitcode}")
        written = time.perf_counter()
        db = sqlite3.connect(data_dir / DB_FILE, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            for shard in shards:
                db.execute("ATTACH DATABASE ? AS s", (shard.path,))
                db.execute("BEGIN")
                db.execute("INSERT INTO labels SELECT * FROM s.labels")
                db.execute("INSERT INTO verdicts (number, listed, body, hash32) SELECT number, listed, body, hash32 FROM s.verdicts")
                db.execute("INSERT INTO changes (number, removed_label_id, at) SELECT number, removed_label_id, at FROM s.changes ORDER BY seq")
                db.execute("COMMIT")
                db.execute("DETACH DATABASE s")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()
        for shard in shards:
            for suffix in ("", "-wal", "-shm"):
                Path(shard.path + suffix).unlink(missing_ok=True)
        log(f"  generated in {written - started:.1f} s with {workers} writer processes, merged in {time.perf_counter() - written:.1f} s")
    size = (data_dir / DB_FILE).stat().st_size
    return {"count": count, "seconds": time.perf_counter() - started, "db_bytes": size, "writers": workers}


def sample_numbers(area_codes: Sequence[str], count: int, sample: int, seed: int = 1) -> list[str]:
    """``sample`` numbers drawn (without replacement) from the first ``count`` of the space."""
    import random

    rng = random.Random(seed)
    space = NumberSpace(area_codes)
    picks = rng.sample(range(count), min(sample, count))
    return [space.number(i) for i in picks]


def listed_count(data_dir: Path) -> int:
    db = sqlite3.connect(data_dir / DB_FILE)
    try:
        return db.execute("SELECT COUNT(*) FROM verdicts WHERE listed = 1").fetchone()[0]
    finally:
        db.close()


def is_listed(verdict: Verdict) -> bool:
    return verdict.action in (Action.WARN, Action.BLOCK)
