"""``numrep case ...``: complaints and disputes from the command line, over gRPC.

    numrep case complain NUMBER CATEGORY --text TEXT [--occurred ISO] [--reporter ID]
    numrep case dispute NUMBER --contact TEXT --evidence TEXT [--reporter ID]
    numrep case show CASE_ID
    numrep case list [--kind complaint|dispute] [--status open|confirmed|rejected|upheld] [--limit N]   # regulator
    numrep case resolve CASE_ID confirmed|rejected|upheld --message TEXT                              # regulator
    numrep case disputes                                   # the disputes of your own labels
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from typing import Any, Callable

from numrep.core.cases import CaseKind, CaseStatus
from numrep.core.categories import CATEGORIES

Command = Callable[..., argparse.ArgumentParser]


def add_case_commands(command: Command, client_flags: Callable[[argparse.ArgumentParser], None],
                      need_subcommand: Callable[[argparse.Namespace], int]) -> None:
    case = command("case", "Complaints and disputes: file them, ask a case by id, and (regulator) list and resolve them.",
                   need_subcommand)
    sub = case.add_subparsers(title="actions", metavar="ACTION")

    def action(name: str, help_text: str, handler: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        client_flags(p)
        return p

    spam = [c for c, found in CATEGORIES.items() if found.is_spam]
    p = action("complain", "File a complaint about a number for a user; prints the case id to ask with.", cmd_complain)
    p.add_argument("number")
    p.add_argument("category", help=f"one of: {', '.join(spam)}")
    p.add_argument("--text", required=True, help="what happened (personal data: only the regulator reads it)")
    p.add_argument("--occurred", default="", help="when the call came, ISO 8601 with offset (e.g. 2026-11-28T19:30:00+00:00)")
    p.add_argument("--reporter", default="", help="your id of the user (pseudonymised by the exchange)")

    p = action("dispute", "File a number owner's dispute of the labels behind its verdict.", cmd_dispute)
    p.add_argument("number")
    p.add_argument("--contact", required=True, help="how the regulator reaches the owner (personal data)")
    p.add_argument("--evidence", required=True, help="why the labels are wrong")
    p.add_argument("--reporter", default="", help="your id of the owner (pseudonymised by the exchange)")

    p = action("show", "A case's status, deadline, age and outcome, by its id.", cmd_show)
    p.add_argument("case_id")

    p = action("list", "List cases (regulator): open ones first, oldest first; then closed ones, newest first.", cmd_list)
    p.add_argument("--kind", choices=[k.value for k in CaseKind])
    p.add_argument("--status", choices=[s.value for s in CaseStatus])
    p.add_argument("--limit", type=int, default=0, help="1 to 1000 (default 100)")

    p = action("resolve", "Resolve an open case (regulator); upholding a dispute retracts its labels.", cmd_resolve)
    p.add_argument("case_id")
    p.add_argument("outcome", choices=[s.value for s in CaseStatus if s is not CaseStatus.OPEN])
    p.add_argument("--message", required=True, help="your words to the complainant or owner")

    action("disputes", "The disputes linked to labels you published.", cmd_disputes)


def _pb() -> Any:
    from numrep.v1 import cases_pb2

    return cases_pb2


def _client(args: argparse.Namespace) -> Any:
    from numrep.cli.main import _client as make_client

    return make_client(args)


def _kind_pb(value: str | None) -> int:
    return 0 if not value else _pb().CaseKind.Value(f"CASE_KIND_{value.upper()}")


def _status_pb(value: str | None) -> int:
    return 0 if not value else _pb().CaseStatus.Value(f"CASE_STATUS_{value.upper()}")


def cmd_complain(args: argparse.Namespace) -> int:
    occurred = _when(args.occurred) if args.occurred else None
    with _client(args) as client:
        case = client.file_complaint(args.number, args.category, args.text, occurred, args.reporter)
    _print([case], args.json, single=True)
    return 0


def cmd_dispute(args: argparse.Namespace) -> int:
    with _client(args) as client:
        case = client.file_dispute(args.number, args.contact, args.evidence, args.reporter)
    _print([case], args.json, single=True)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with _client(args) as client:
        case = client.get_case(args.case_id)
    _print([case], args.json, single=True)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        cases = client.list_cases(_kind_pb(args.kind), _status_pb(args.status), args.limit)
    _print(cases, args.json)
    return 0


def cmd_resolve(args: argparse.Namespace) -> int:
    with _client(args) as client:
        case = client.resolve_case(args.case_id, _status_pb(args.outcome), args.message)
    _print([case], args.json, single=True)
    return 0


def cmd_disputes(args: argparse.Namespace) -> int:
    with _client(args) as client:
        cases = client.list_disputes()
    _print(cases, args.json)
    return 0


def _when(text: str) -> datetime:
    from numrep.cli.main import CliError

    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"--occurred {text!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise CliError("--occurred needs a UTC offset, e.g. 2026-11-28T19:30:00+00:00")
    return when


def _print(cases: list[Any], as_json: bool, single: bool = False) -> None:
    from numrep.cli.output import as_dict, emit_json

    if as_json:
        emit_json(as_dict(cases[0]) if single else [as_dict(c) for c in cases])
        return
    if not cases:
        print("no cases")
    for case in cases:
        print(case_text(case))


def case_text(case: Any) -> str:
    pb = _pb()
    kind = pb.CaseKind.Name(case.kind).removeprefix("CASE_KIND_").lower()
    status = pb.CaseStatus.Name(case.status).removeprefix("CASE_STATUS_")
    head = f"{case.case_id}  {kind}  {status}  {case.number}" + (f"  {case.category}" if case.category else "")
    days, rest = divmod(case.age_seconds, 86400)
    lines = [head, f"  filed {_t(case.filed_at)}, deadline {_t(case.deadline)}, age {days} d {rest // 3600} h"
             + ("  OVERDUE" if case.overdue else "")]
    if case.HasField("occurred_at"):
        lines.append(f"  call at {_t(case.occurred_at)}")
    if case.HasField("resolved_at"):
        lines.append(f"  resolved {_t(case.resolved_at)}: {case.outcome}")
    if case.label_ids:
        lines.append(f"  labels: {', '.join(case.label_ids)}")
    if case.HasField("particulars"):
        p = case.particulars
        for name, value in (("text", p.text), ("contact", p.contact), ("evidence", p.evidence),
                            ("filed via", p.filed_via), ("filed by", p.filed_by)):
            if value:
                lines.append(f"  {name}: {value}")
    return "\n".join(lines)


def _t(ts: Any) -> str:
    return ts.ToDatetime(tzinfo=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
