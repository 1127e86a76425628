"""``numrep replay FILE``: run a labelled history through a reconciler, no server.

Input rows (CSV with a header, or JSON Lines): ``number, participant, label,
time`` and optionally ``truth``, ``reporter`` and ``confidence``.

* ``label`` is a category code (``fraud.one_ring``, ``legitimate`` ...) or
  ``spam`` (counted as ``marketing``) / ``ham`` (``legitimate``), or
  ``reassigned`` (from a carrier or the regulator: the number went to a new
  subscriber, forget what was said before);
* a row with a ``reporter`` is an end user's flag collected by the app named in
  ``participant``; otherwise it is that participant's label;
* ``time`` is ISO 8601 (UTC if it has no offset) or seconds since the epoch;
* ``truth`` (any row of the number) is ``spam``/``ham``, ``1``/``0``,
  ``true``/``false`` or a category code.

Participants' roles come from ``--roles FILE`` (JSON object id -> role),
``--role ID=ROLE``, or their names (``regulator``/``ftc``... , ``carrier``,
``handset``, ``app``), else ``--default-role``. With ``--method ds`` the trust
model is fitted on the file itself (the regulator's labels as gold, never the
``truth`` column), then every number gets a verdict at the newest time in the
file. Where truth is given, a number counts as predicted spam when its verdict
is WARN or BLOCK; the false-block rate is BLOCKs among legitimate numbers.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from numrep.core.categories import CATEGORIES
from numrep.core.model import Action, Evidence, Flag, FlagTally, Label, Role, Verdict
from numrep.trust.baselines import MajorityReconciler, MeanReconciler
from numrep.trust.config import TrustConfig
from numrep.trust.engine import TrustReconciler
from numrep.core.reassignment import REASSIGNED_CODE
from numrep.trust.model import TrustModel, TrustSnapshot

METHODS = ("ds", "majority", "mean")
SPAM_WORDS = {"spam": "marketing", "ham": "legitimate", "legit": "legitimate", "not_spam": "legitimate"}
_LABEL_TTL = timedelta(days=3650)


@dataclass(frozen=True)
class ReplayRow:
    number: str
    participant: str
    category: str
    time: datetime
    truth: bool | None = None
    reporter: str = ""
    confidence: float = 1.0


@dataclass(frozen=True)
class Metrics:
    numbers: int
    spam: int
    legitimate: int
    true_positive: int
    false_positive: int
    false_negative: int
    true_negative: int
    blocked_legitimate: int
    accuracy: float
    precision: float
    recall: float
    f1: float
    false_block_rate: float  # BLOCK verdicts among legitimate numbers

    @classmethod
    def of(cls, truth: Sequence[bool], listed: Sequence[bool], blocked: Sequence[bool]) -> "Metrics":
        tp = sum(1 for t, p in zip(truth, listed) if t and p)
        fp = sum(1 for t, p in zip(truth, listed) if not t and p)
        fn = sum(1 for t, p in zip(truth, listed) if t and not p)
        tn = sum(1 for t, p in zip(truth, listed) if not t and not p)
        blocked_legit = sum(1 for t, b in zip(truth, blocked) if not t and b)
        n = len(truth)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        legit = fp + tn
        return cls(n, tp + fn, legit, tp, fp, fn, tn, blocked_legit, (tp + tn) / n if n else 0.0,
                   precision, recall, f1, blocked_legit / legit if legit else 0.0)

    def line(self) -> str:
        return (f"numbers={self.numbers} (spam {self.spam}, legitimate {self.legitimate})  accuracy={self.accuracy:.4f}  "
                f"precision={self.precision:.4f}  recall={self.recall:.4f}  F1={self.f1:.4f}  "
                f"false-block={self.false_block_rate:.4%} ({self.blocked_legitimate} legitimate numbers blocked)")


@dataclass(frozen=True)
class ReplayReport:
    method: str
    now: datetime
    verdicts: dict[str, Verdict]
    truth: dict[str, bool]
    metrics: Metrics | None
    snapshot: TrustSnapshot | None = None
    rows: int = 0
    skipped: list[str] = field(default_factory=list)


# --- rows -----------------------------------------------------------------------------------
def parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, (int, float)) or (isinstance(value, str) and value.strip().replace(".", "", 1).isdigit()):
        when = datetime.fromtimestamp(float(value), timezone.utc)
    else:
        when = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def parse_category(value: str) -> str:
    code = str(value).strip().lower()
    code = SPAM_WORDS.get(code, code)
    if code not in CATEGORIES and code != REASSIGNED_CODE:
        raise ValueError(f"unknown label {value!r}: a category code, 'spam' or 'ham'")
    return code


def parse_truth(value: Any) -> bool | None:
    if value is None:
        return None
    text = str(value).strip().lower()
    if text == "":
        return None
    if text in ("1", "true", "yes", "spam"):
        return True
    if text in ("0", "false", "no", "ham", "legit", "not_spam", "legitimate"):
        return False
    if text in CATEGORIES:
        return CATEGORIES[text].is_spam
    raise ValueError(f"unknown truth {value!r}: spam/ham, 1/0, true/false or a category code")


def rows_from_records(records: Iterable[Mapping[str, Any]]) -> tuple[list[ReplayRow], list[str]]:
    rows: list[ReplayRow] = []
    skipped: list[str] = []
    for index, record in enumerate(records, start=1):
        try:
            number = str(record["number"]).strip()
            participant = str(record["participant"]).strip()
            if not number or not participant:
                raise ValueError("empty number or participant")
            confidence = record.get("confidence")
            rows.append(ReplayRow(
                number=number,
                participant=participant,
                category=parse_category(record["label"]),
                time=parse_time(record["time"]),
                truth=parse_truth(record.get("truth")),
                reporter=str(record.get("reporter") or "").strip(),
                confidence=1.0 if confidence in (None, "") else min(max(float(confidence), 0.0), 1.0),
            ))
        except (KeyError, ValueError, TypeError) as exc:
            skipped.append(f"row {index}: {exc.__class__.__name__}: {exc}")
    return rows, skipped


def read_rows(path: str | Path) -> tuple[list[ReplayRow], list[str]]:
    """Rows of a CSV (header line) or JSON Lines file, and why any were skipped."""
    text = Path(path).read_text(encoding="utf-8")
    stripped = text.lstrip()
    if str(path).endswith((".jsonl", ".ndjson", ".json")) or stripped.startswith("{"):
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        records = list(csv.DictReader(io.StringIO(text)))
    return rows_from_records(records)


def guess_role(participant: str, default: Role = Role.APP_VENDOR) -> Role:
    name = participant.lower()
    if any(word in name for word in ("regulator", "ftc", "fcc", "ofcom", "miit")):
        return Role.REGULATOR
    if "carrier" in name:
        return Role.CARRIER
    if "handset" in name:
        return Role.HANDSET_VENDOR
    if "app" in name:
        return Role.APP_VENDOR
    return default


# --- replay ---------------------------------------------------------------------------------
def replay(
    rows: Iterable[ReplayRow | Mapping[str, Any]],
    *,
    method: str = "ds",
    roles: Mapping[str, Role] | None = None,
    default_role: Role = Role.APP_VENDOR,
    config: TrustConfig | None = None,
    now: datetime | None = None,
) -> ReplayReport:
    """Verdicts for every number in ``rows`` at ``now`` (default: the newest row)
    from ``method`` (``ds``: the trust engine fitted on these rows; ``majority``;
    ``mean``), with metrics where rows carry truth."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; one of {', '.join(METHODS)}")
    given = list(rows)
    parsed: list[ReplayRow] = [r for r in given if isinstance(r, ReplayRow)]
    skipped: list[str] = []
    records = [r for r in given if not isinstance(r, ReplayRow)]
    if records:
        more, skipped = rows_from_records(records)
        parsed += more
    if not parsed:
        return ReplayReport(method, now or datetime.now(timezone.utc), {}, {}, None, rows=0, skipped=skipped)
    at = now or max(r.time for r in parsed)
    role_map: dict[str, Role] = {}
    for row in parsed:
        if row.participant not in role_map:
            role_map[row.participant] = (roles or {}).get(row.participant) or guess_role(row.participant, default_role)

    labels: dict[str, list[Label]] = {}
    flags: dict[str, list[Flag]] = {}
    truth: dict[str, bool] = {}
    for index, row in enumerate(parsed):
        if row.truth is not None:
            truth[row.number] = row.truth
        if row.time > at:
            continue
        if row.reporter:
            flags.setdefault(row.number, []).append(Flag(row.number, row.participant, row.reporter, row.category, row.time))
        else:
            labels.setdefault(row.number, []).append(Label(
                id=f"{row.participant}/replay-{index}", issuer=row.participant, number=row.number, category=row.category,
                confidence=row.confidence, issued_at=row.time, expires_at=row.time + _LABEL_TTL, token="",
            ))

    snapshot = None
    if method == "ds":
        model = TrustModel(role_map, config)
        snapshot = model.refit(
            (lb for own in labels.values() for lb in own), flags=(f for own in flags.values() for f in own), now=at,
        )
        reconciler: Any = TrustReconciler(role_map, model)
    elif method == "majority":
        reconciler = MajorityReconciler()
    else:
        reconciler = MeanReconciler()

    verdicts: dict[str, Verdict] = {}
    for number in sorted(set(labels) | set(flags)):
        own_flags = flags.get(number, [])
        evidence = Evidence(number, tuple(labels.get(number, ())), _tallies(own_flags))
        verdicts[number] = reconciler.reconcile(evidence, at, flags=own_flags)
    judged = [n for n in sorted(truth) if n in verdicts]
    metrics = None
    if judged:
        metrics = Metrics.of(
            [truth[n] for n in judged],
            [verdicts[n].is_listed for n in judged],
            [verdicts[n].action is Action.BLOCK for n in judged],
        )
    return ReplayReport(method, at, verdicts, truth, metrics, snapshot, rows=len(parsed), skipped=skipped)


def _tallies(flags: Sequence[Flag]) -> tuple[FlagTally, ...]:
    by_app: dict[str, dict[str, set[str]]] = {}
    latest: dict[str, datetime] = {}
    for f in flags:
        by_app.setdefault(f.app_id, {}).setdefault(f.category, set()).add(f.reporter)
        latest[f.app_id] = max(latest.get(f.app_id, f.time), f.time)
    return tuple(
        FlagTally(app, tuple(sorted((code, len(who)) for code, who in cats.items())), latest[app])
        for app, cats in sorted(by_app.items())
    )


# --- command line ---------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``numrep replay`` (shared with ``numrep.cli``)."""
    parser.add_argument("file", help="CSV (with a header) or JSON Lines: number, participant, label, time[, truth, reporter, confidence]")
    parser.add_argument("--method", choices=METHODS + ("all",), default="ds",
                        help="ds: learned trust (default); majority: one vote per participant; mean: unweighted mean; all: compare")
    parser.add_argument("--roles", help="JSON file mapping participant ids to roles (carrier, handset_vendor, app_vendor, regulator)")
    parser.add_argument("--role", action="append", default=[], metavar="ID=ROLE", help="a participant's role (repeatable)")
    parser.add_argument("--default-role", default=Role.APP_VENDOR.value, choices=[r.value for r in Role],
                        help="role of participants named nothing recognisable (default app_vendor)")
    parser.add_argument("--limit", type=int, default=50, help="verdicts to print (0: all, -1: none; default 50)")
    parser.add_argument("--explain", action="store_true", help="print each verdict's explanation and contributions")
    parser.add_argument("--trust", action="store_true", help="print the learned reliability of every source (ds)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="numrep replay",
        description="Run a labelled history through the trust engine or a baseline, without a server; "
                    "where rows carry truth, print accuracy, precision, recall, F1 and the false-block rate.",
    )
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace, out: Any = None) -> int:
    """``numrep replay`` with parsed ``args``; 0, or 1 after one line on stderr."""
    out = out or sys.stdout
    try:
        roles = _roles(args)
        rows, skipped = read_rows(args.file)
    except (OSError, ValueError) as exc:
        print(f"numrep replay: error: {exc}", file=sys.stderr)
        return 1
    for reason in skipped[:20]:
        print(f"skipped {reason}", file=sys.stderr)
    if len(skipped) > 20:
        print(f"skipped {len(skipped) - 20} more rows", file=sys.stderr)
    if not rows:
        print("numrep replay: error: no usable rows", file=sys.stderr)
        return 1
    methods = METHODS if args.method == "all" else (args.method,)
    reports = [replay(rows, method=m, roles=roles, default_role=Role(args.default_role)) for m in methods]
    first = reports[0]
    print(f"{first.rows} rows, {len(first.verdicts)} numbers, verdicts at {first.now.isoformat()}", file=out)
    for report in reports:
        _print_report(report, args, out)
    if len(reports) > 1:
        print("\ncomparison", file=out)
        print(f"  {'method':<9} {'accuracy':>9} {'precision':>9} {'recall':>7} {'F1':>7} {'false-block':>12}", file=out)
        for report in reports:
            m = report.metrics
            if m is None:
                print(f"  {report.method:<9} (no truth in the file)", file=out)
            else:
                print(f"  {report.method:<9} {m.accuracy:9.4f} {m.precision:9.4f} {m.recall:7.4f} {m.f1:7.4f} {m.false_block_rate:12.4%}", file=out)
    return 0


def _roles(args: argparse.Namespace) -> dict[str, Role]:
    roles: dict[str, Role] = {}
    if args.roles:
        for pid, role in json.loads(Path(args.roles).read_text(encoding="utf-8")).items():
            roles[pid] = Role(role)
    for item in args.role:
        pid, sep, role = item.partition("=")
        if not sep:
            raise ValueError(f"--role wants ID=ROLE, got {item!r}")
        roles[pid.strip()] = Role(role.strip())
    return roles


def _print_report(report: ReplayReport, args: argparse.Namespace, out) -> None:
    print(f"\n== {report.method} ==", file=out)
    snap = report.snapshot
    if snap is not None:
        print(f"trust epoch {snap.epoch}: {snap.numbers} numbers, {snap.labels} labels, {snap.flags} flags, "
              f"{snap.gold} gold; EM {snap.iterations} iterations ({'converged' if snap.converged else 'not converged'}); "
              f"base rate {snap.base_probability:.1%}", file=out)
        if args.trust:
            for rel in sorted(snap.sources.values(), key=lambda r: r.source):
                print(f"  {rel.source:<24} {rel.prior:<15} spam labels right {rel.spam_precision:6.1%}  legitimate labels right "
                      f"{rel.legit_precision:6.1%}  sensitivity {rel.sensitivity:.3f}  specificity {rel.specificity:.4f}  "
                      f"independence {rel.independence:.2f}", file=out)
    limit = len(report.verdicts) if args.limit == 0 else max(args.limit, 0)
    for number, verdict in list(report.verdicts.items())[:limit]:
        truth = report.truth.get(number)
        mark = "" if truth is None else f"  truth={'spam' if truth else 'ham'}"
        print(f"{number}  {verdict.action.value:<5} {verdict.category or '-':<28} p={verdict.spam_probability:.3f} "
              f"conf={verdict.confidence:.2f}{mark}", file=out)
        if args.explain:
            print(f"    {verdict.explanation}", file=out)
            for c in verdict.contributions:
                print(f"    - {c.explanation}", file=out)
    if len(report.verdicts) > limit and args.limit >= 0:
        print(f"... {len(report.verdicts) - limit} more verdicts (--limit 0 prints all)", file=out)
    if report.metrics is not None:
        print(report.metrics.line(), file=out)


if __name__ == "__main__":
    raise SystemExit(main())
