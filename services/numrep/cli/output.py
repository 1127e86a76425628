"""How the CLI shows results: readable text by default, JSON with ``--json``."""

from __future__ import annotations

import json
import sys
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from numrep.api.convert import ACTION_FROM_PB, ROLE_FROM_PB
from numrep.v1 import common_pb2, publish_pb2, registry_pb2


def as_dict(message: Message) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def emit_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def verdict_text(verdict: common_pb2.Verdict) -> str:
    action = ACTION_FROM_PB[verdict.action].value.upper()
    lines = [f"{verdict.number}  {action}" + (f"  {verdict.category}" if verdict.category else "")]
    if verdict.contributions:
        lines.append(f"  spam probability {verdict.spam_probability:.0%}, confidence {verdict.confidence:.0%}, version {verdict.version}")
    lines.append(f"  {verdict.explanation}")
    for c in verdict.contributions:
        lines.append(f"   - {c.explanation}")
    return "\n".join(lines)


def item_text(result: publish_pb2.ItemResult) -> str:
    status = publish_pb2.ItemStatus.Name(result.status).removeprefix("ITEM_STATUS_").lower()
    text = f"[{result.index}] {status}"
    if result.id:
        text += f" {result.id}"
    if result.reason:
        text += f" ({result.reason}: {result.message})"
    return text


def participant_text(p: registry_pb2.Participant) -> str:
    keys = ", ".join(k.kid + (" (revoked)" if k.HasField("revoked_at") else "") for k in p.keys)
    name = f" - {p.display_name}" if p.display_name else ""
    return f"{p.id} [{ROLE_FROM_PB[p.role].value}]{name}\n  keys: {keys or 'none'}"


def trust_text(report: registry_pb2.TrustReport) -> str:
    if report.epoch == 0:
        head = "trust epoch 0: nothing fitted yet; every participant counts by its role's prior"
    else:
        head = (f"trust epoch {report.epoch}, fitted {report.fitted_at.ToDatetime():%Y-%m-%d %H:%M:%S} UTC from "
                f"{report.labels} labels and {report.flags} flags on {report.numbers} numbers ({report.gold} of known truth); "
                f"base rate {report.base_probability:.0%}" + ("" if report.converged else "; EM did not converge"))
    if report.verdicts_changed:
        head += f"\n{report.verdicts_changed} stored verdicts changed"
    rows = [f"  {s.summary}" for s in report.sources]
    return "\n".join([head, *rows])
