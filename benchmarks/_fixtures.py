"""Fresh data for every run: keys, a registered federation, FTC-shaped numbers,
realistic verdicts and labels, written straight through the store.

Everything lives under a temporary directory made per run; nothing is reused
between runs.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import dataclasses
import json
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
from numrep.store.sqlite import DB_FILE, MISSING_ENTRIES, SqliteStore, encoded_entry

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
    other_app: Identity    # a second app vendor (flag_flood: the neighbour of a flooding app)

    @property
    def members(self) -> tuple[Identity, ...]:
        return (self.regulator, self.carrier_ed, self.carrier_es, self.handset, self.app, self.other_app)

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
        other_app=generate_identity("callguard-app", Role.APP_VENDOR, "EdDSA"),
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
    return [c for c in sorted(codes) if c[0] in "23456789" and _us_area_code(c)]


_PROBES = ("2000000", "3000001", "4445555", "5550100", "6521766", "7770000", "8881234", "9999999")


def _us_area_code(code: str) -> bool:
    """A US (not Canadian or Caribbean NANP) area code in which every exchange
    code 200-999 is valid, judged by libphonenumber on one probe per first digit."""
    import phonenumbers

    if phonenumbers.region_code_for_number(phonenumbers.parse(f"+1{code}2345678")) != "US":
        return False
    return all(_valid(f"+1{code}{probe}") for probe in _PROBES)


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
    signature = hashlib.sha512(jti.encode()).digest()[:signature_len]  # deterministic placeholder
    token = f"{shape.header()}.{_b64(json.dumps(claims, separators=(',', ':')).encode())}.{_b64(signature)}"
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
# Two ways to fill a store with N numbers:
#
# * exact: every row written through ``SqliteStore.add_labels`` / ``put_verdicts``
#   in large batches (in parallel shard files, then copied into the exchange's
#   file with INSERT ... SELECT). Costs ~100-300 us per number on the 2-core box,
#   i.e. minutes for a million, so it is the ``--exact-data`` option.
# * seeded (default): the first ``seed`` numbers are written through the store
#   exactly as above; SQLite then produces the remaining rows from the bodies
#   ``put_verdicts`` wrote (json_set of the number into the stored template
#   body, hash32 through the store's own function), and a random sample of
#   those rows is checked to be byte-identical to what ``put_verdicts`` /
#   ``add_labels`` would have written for the same number. A mismatch is an
#   error, never silently accepted.

# Yesterday at midnight: labels are live for the run (90-day lifetime), and the
# same value in every process of one run (it travels inside ShardSpec).
LABEL_ISSUED = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
_NUM, _LID = "@@bench-number@@", "@@bench-label-id@@"


@dataclass(frozen=True)
class ShardSpec:
    """Numbers ``space.number(i)`` for i in [start, stop) as verdicts
    (``templates[i % len]``), optionally each with one label."""

    path: str
    area_codes: tuple[str, ...]
    start: int
    stop: int
    templates: tuple[Verdict, ...]
    batch: int
    label_shape: LabelShape | None = None
    issued: datetime = LABEL_ISSUED


def _rows_for(spec: ShardSpec, space: NumberSpace, low: int, high: int) -> tuple[list[Label], list[tuple[Verdict, tuple]]]:
    numbers = space.numbers(low, high)
    templates = spec.templates
    if spec.label_shape is None:
        return [], [(verdict_for(templates[i % len(templates)], n), ()) for i, n in zip(range(low, high), numbers)]
    labels = [shaped_label(spec.label_shape, n, i, spec.issued) for i, n in zip(range(low, high), numbers)]
    return labels, [(label_verdict(templates[i % len(templates)], lb), ()) for i, lb in zip(range(low, high), labels)]


def _write_through_store(store: SqliteStore, spec: ShardSpec) -> None:
    space = NumberSpace(spec.area_codes)
    for low in range(spec.start, spec.stop, spec.batch):
        high = min(spec.stop, low + spec.batch)
        labels, updates = _rows_for(spec, space, low, high)
        if labels:
            store.add_labels(labels)
        store.put_verdicts(updates)


def _write_shard(spec: ShardSpec) -> None:
    store = SqliteStore(Path(spec.path))
    try:
        _write_through_store(store, spec)
    finally:
        store.close()


def _amplify(db: sqlite3.Connection, spec: ShardSpec) -> None:
    """Rows for numbers [spec.start, spec.stop) produced by SQLite from the template bodies."""
    from numrep.core.privacy import hash32
    from numrep.store.codec import to_epoch_ms, verdict_to_json

    space = NumberSpace(spec.area_codes)
    db.create_function("nr_hash32", 1, hash32, deterministic=True)
    db.execute("CREATE TEMP TABLE bench_codes (idx INTEGER PRIMARY KEY, code TEXT NOT NULL)")
    db.executemany("INSERT INTO bench_codes VALUES (?, ?)", list(enumerate(space.codes)))
    db.execute("CREATE TEMP TABLE bench_templates (idx INTEGER PRIMARY KEY, listed INTEGER NOT NULL, body TEXT NOT NULL, at INTEGER NOT NULL)")
    db.executemany("INSERT INTO bench_templates VALUES (?, ?, ?, ?)",
                   [(i, int(t.is_listed), verdict_to_json(t), to_epoch_ms(t.computed_at)) for i, t in enumerate(spec.templates)])
    db.execute(
        "CREATE TEMP TABLE bench_nums AS WITH RECURSIVE seq(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < ?),"
        " ks(i, k) AS (SELECT i, (i * ? + 7919) % ? FROM seq)"
        " SELECT i, '+1' || c.code || ((k % 8000000) / 10000 + 200) || printf('%04d', k % 10000) AS num"
        " FROM ks JOIN bench_codes c ON c.idx = k / 8000000",
        (spec.start, spec.stop, _STRIDE, space.size),
    )
    n_templates = len(spec.templates)
    # Template bodies with placeholders, serialised by the store's own codec; SQLite substitutes them.
    if spec.label_shape is not None:
        shape, issued = spec.label_shape, spec.issued
        db.create_function("nr_label_token", 2, lambda num, i: shaped_label(shape, num, i, issued).token, deterministic=True)
        probe = shaped_label(shape, "+12025550143", 0, issued)
        db.execute(
            "INSERT INTO labels (id, issuer, number, category, confidence, issued_at, expires_at, token, evidence)"
            " SELECT ? || '/' || printf('%032x', i), ?, num, ?, ?, ?, ?, nr_label_token(num, i), '' FROM bench_nums ORDER BY i",
            (shape.issuer, shape.issuer, probe.category, probe.confidence, to_epoch_ms(probe.issued_at), to_epoch_ms(probe.expires_at)),
        )
        placeholder = dataclasses.replace(probe, id=_LID, number=_NUM)
        bodies = [verdict_to_json(label_verdict(t, placeholder)) for t in spec.templates]
        body = f"replace(replace(t.body, '{_NUM}', x.num), '{_LID}', ? || '/' || printf('%032x', x.i))"
        params: tuple = (shape.issuer, n_templates)
    else:
        bodies = [verdict_to_json(verdict_for(t, _NUM)) for t in spec.templates]
        body = f"replace(t.body, '{_NUM}', x.num)"
        params = (n_templates,)
    db.executemany("UPDATE bench_templates SET body = ? WHERE idx = ?", [(b, i) for i, b in enumerate(bodies)])
    db.execute(
        f"INSERT INTO verdicts (number, listed, body, hash32) SELECT x.num, t.listed, {body}, nr_hash32(x.num)"
        " FROM bench_nums x JOIN bench_templates t ON t.idx = x.i % ? ORDER BY x.num",
        params,
    )
    # What put_verdicts also writes: each listed number's encoded Sync entry and stale-after time,
    # with the store's own statement for verdicts that have none.
    db.create_function("nr_entry", 2, encoded_entry, deterministic=True)
    db.execute(MISSING_ENTRIES)
    db.execute("INSERT INTO changes (number, removed_label_id, at) SELECT x.num, '', t.at"
               " FROM bench_nums x JOIN bench_templates t ON t.idx = x.i % ? ORDER BY x.i", (n_templates,))
    for table in ("bench_nums", "bench_codes", "bench_templates"):
        db.execute(f"DROP TABLE temp.{table}")


def _verify(db: sqlite3.Connection, spec: ShardSpec, sample: int = 200) -> int:
    """Compare a sample of amplified rows with what the store itself writes for them."""
    import random

    from numrep.core.privacy import hash32
    from numrep.store.codec import to_epoch_ms, verdict_to_json

    space = NumberSpace(spec.area_codes)
    rng = random.Random(7)
    picks = [rng.randrange(spec.start, spec.stop) for _ in range(min(sample, spec.stop - spec.start))]
    for i in picks:
        labels, updates = _rows_for(spec, space, i, i + 1)
        verdict = updates[0][0]
        row = db.execute("SELECT listed, body, hash32, entry, e.valid_until FROM verdicts LEFT JOIN listed_entries e USING (number)"
                         " WHERE number = ?", (verdict.number,)).fetchone()
        tokens = "\n".join(lb.token for lb in sorted(labels, key=lambda lb: lb.id)) or None
        listed = verdict.is_listed
        expected = (int(listed), verdict_to_json(verdict), hash32(verdict.number),
                    encoded_entry(verdict_to_json(verdict), tokens) if listed else None,
                    None if verdict.valid_until is None or not listed else to_epoch_ms(verdict.valid_until))
        if row is None or tuple(row) != expected:
            raise RuntimeError(f"generated verdict row for index {i} differs from put_verdicts: {row!r} != {expected!r}")
        for lb in labels:
            got = db.execute("SELECT id, issuer, number, category, confidence, issued_at, expires_at, token, evidence, retracted_at"
                             " FROM labels WHERE id = ?", (lb.id,)).fetchone()
            want = (lb.id, lb.issuer, lb.number, lb.category, lb.confidence, to_epoch_ms(lb.issued_at), to_epoch_ms(lb.expires_at),
                    lb.token, lb.evidence, None)
            if got is None or tuple(got) != want:
                raise RuntimeError(f"generated label row for index {i} differs from add_labels: {got!r} != {want!r}")
    return len(picks)


def build_store(
    data_dir: Path,
    fed: Federation,
    count: int,
    *,
    area_codes: Sequence[str],
    templates: Sequence[Verdict],
    label_shape: LabelShape | None = None,
    exact: bool = False,
    seed: int = 5_000,
    workers: int = 2,
    batch: int = 20_000,
    log: Callable[[str], None] = lambda _m: None,
) -> dict:
    """A SQLite data directory holding ``count`` verdicts (and labels); see above."""
    from benchmarks._procs import CTX

    started = time.perf_counter()
    data_dir.mkdir(parents=True, exist_ok=True)
    db_path = data_dir / DB_FILE
    main = SqliteStore.in_directory(data_dir)
    register(main, fed)
    base = ShardSpec(str(db_path), tuple(area_codes), 0, count, tuple(templates), batch, label_shape)
    info: dict = {"count": count, "method": "exact" if exact else "seeded"}
    if not exact:
        seeded = min(seed, count)
        try:
            _write_through_store(main, dataclasses.replace(base, stop=seeded))
        finally:
            main.close()
        info["through_store"] = seeded
        if count > seeded:
            db = sqlite3.connect(db_path, isolation_level=None)
            try:
                db.execute("PRAGMA cache_size = -262144")
                db.execute("BEGIN")
                _amplify(db, dataclasses.replace(base, start=seeded))
                db.execute("COMMIT")
                info["verified_rows"] = _verify(db, dataclasses.replace(base, start=seeded))
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                db.close()
        log(f"  {count:,} numbers in {time.perf_counter() - started:.1f} s ({seeded:,} through the store, the rest by SQLite, "
            f"{info.get('verified_rows', 0)} sampled rows byte-identical to the store's own)")
    else:
        main.close()
        workers = max(1, min(workers, count // 50_000 or 1))
        bounds = [count * w // workers for w in range(workers + 1)]
        shards = [dataclasses.replace(base, path=str(data_dir / f"shard{w}.sqlite3"), start=bounds[w], stop=bounds[w + 1])
                  for w in range(workers)]
        if workers == 1:
            _write_shard(dataclasses.replace(shards[0], path=str(db_path)))
        else:
            procs = [CTX.Process(target=_write_shard, args=(sh,), name=f"bench-shard{i}", daemon=True) for i, sh in enumerate(shards)]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
                if p.exitcode != 0:
                    raise RuntimeError(f"data generator {p.name} failed with exit code {p.exitcode}")
            db = sqlite3.connect(db_path, isolation_level=None)
            try:
                for shard in shards:
                    db.execute("ATTACH DATABASE ? AS s", (shard.path,))
                    db.execute("BEGIN")
                    db.execute("INSERT INTO labels SELECT * FROM s.labels")
                    db.execute("INSERT INTO verdicts (number, listed, body, hash32) SELECT number, listed, body, hash32 FROM s.verdicts")
                    db.execute("INSERT INTO listed_entries SELECT * FROM s.listed_entries")
                    db.execute("INSERT INTO changes (number, removed_label_id, at) SELECT number, removed_label_id, at FROM s.changes ORDER BY seq")
                    db.execute("COMMIT")
                    db.execute("DETACH DATABASE s")
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                db.close()
            for shard in shards:
                for suffix in ("", "-wal", "-shm"):
                    Path(shard.path + suffix).unlink(missing_ok=True)
        info["through_store"] = count
        info["writers"] = workers
        log(f"  {count:,} numbers through the store in {time.perf_counter() - started:.1f} s ({workers} writer processes)")
    info["seconds"] = time.perf_counter() - started
    info["db_bytes"] = db_path.stat().st_size
    return info


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
