"""``numrep replay FILE``: CSV and JSONL histories through the engine and the baselines."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from numrep.core.model import Action
from numrep.trust.replay import Metrics, ReplayRow, main, read_rows, replay

from trust_testkit import NOW, history


def _write_history(path: Path, kind: str) -> None:
    labels, flags, truth = history()
    rows = [{"number": lb.number, "participant": lb.issuer, "label": lb.category, "time": lb.issued_at.isoformat(),
             "truth": "spam" if truth[lb.number] else "ham", "confidence": lb.confidence} for lb in labels]
    rows += [{"number": f.number, "participant": f.app_id, "label": "spam" if f.category != "legitimate" else "ham",
              "time": int(f.time.timestamp()), "reporter": f.reporter, "truth": ""} for f in flags]
    if kind == "csv":
        with path.open("w", newline="") as out:
            writer = csv.DictWriter(out, ["number", "participant", "label", "time", "truth", "reporter", "confidence"])
            writer.writeheader()
            writer.writerows(rows)
    else:
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_replay_a_file_comparing_the_engine_with_the_baselines(tmp_path, capsys, kind):
    path = tmp_path / f"history.{kind}"
    _write_history(path, kind)
    assert main([str(path), "--method", "all", "--limit", "3", "--role", "ftc=regulator", "--trust"]) == 0
    out = capsys.readouterr().out
    assert "== ds ==" in out and "== majority ==" in out and "== mean ==" in out
    assert "trust epoch 1:" in out and "spam labels right" in out
    assert "... " in out and "more verdicts" in out
    table = out[out.index("comparison"):].splitlines()[2:]
    f1 = {line.split()[0]: float(line.split()[4]) for line in table}
    false_block = {line.split()[0]: float(line.split()[5].rstrip("%")) for line in table}
    assert f1["ds"] > f1["majority"] and f1["ds"] > f1["mean"]  # app-b lies: only the engine finds out
    assert false_block["ds"] <= false_block["majority"]


def test_replay_metrics_and_verdicts(tmp_path):
    path = tmp_path / "h.csv"
    _write_history(path, "csv")
    rows, skipped = read_rows(path)
    assert not skipped
    report = replay(rows, method="ds")
    assert report.snapshot is not None and report.snapshot.epoch == 1
    assert report.now == max(r.time for r in rows)
    m = report.metrics
    assert m is not None and m.numbers == len(report.truth) and m.f1 > 0.9 and m.false_block_rate < 0.01
    assert all("trust epoch 1" in v.explanation for v in report.verdicts.values())
    assert {v.action for v in report.verdicts.values()} <= {Action.ALLOW, Action.WARN, Action.BLOCK, Action.UNKNOWN}


def test_metrics_by_hand():
    m = Metrics.of(truth=[True, True, False, False, False], listed=[True, False, True, False, False],
                   blocked=[True, False, True, False, False])
    assert (m.true_positive, m.false_positive, m.false_negative, m.true_negative) == (1, 1, 1, 2)
    assert m.precision == 0.5 and m.recall == 0.5 and m.f1 == 0.5 and m.accuracy == 0.6
    assert m.false_block_rate == pytest.approx(1 / 3) and m.blocked_legitimate == 1


def test_rows_in_every_accepted_form_and_bad_rows_are_skipped_with_a_reason():
    report = replay([
        {"number": "+1", "participant": "carrier-x", "label": "spam", "time": "2025-06-01T00:00:00Z", "truth": "1"},
        {"number": "+1", "participant": "carrier-y", "label": "fraud.one_ring", "time": "2025-06-01T00:00:00", "truth": "fraud"},
        {"number": "+2", "participant": "app-z", "label": "ham", "time": 1748736000, "truth": "false", "reporter": "r1"},
        {"number": "+3", "participant": "carrier-x", "label": "nonsense", "time": "2025-06-01"},
        {"number": "+4", "participant": "carrier-x", "label": "spam"},
    ], method="majority")
    assert sorted(report.verdicts) == ["+1", "+2"]
    assert report.truth == {"+1": True, "+2": False}
    assert len(report.skipped) == 2 and "unknown label 'nonsense'" in report.skipped[0] and "time" in report.skipped[1]
    assert report.verdicts["+1"].action is Action.BLOCK  # majority: two spam votes
    rows = [ReplayRow("+5", "carrier-x", "marketing", NOW)]
    assert replay(rows, method="mean").verdicts["+5"].action is Action.WARN  # one vote: no block
    with pytest.raises(ValueError):
        replay(rows, method="nope")


def test_a_missing_file_or_an_empty_one_is_one_line_on_stderr(tmp_path, capsys):
    assert main([str(tmp_path / "absent.csv")]) == 1
    empty = tmp_path / "empty.csv"
    empty.write_text("number,participant,label,time\n")
    assert main([str(empty)]) == 1
    err = capsys.readouterr().err
    assert err.count("numrep replay: error") == 2


def test_a_reassignment_row_forgets_what_was_said_before():
    rows = [
        {"number": "+1", "participant": "carrier-x", "label": "fraud", "time": "2025-05-01T00:00:00Z", "truth": "ham"},
        {"number": "+1", "participant": "carrier-y", "label": "fraud", "time": "2025-05-02T00:00:00Z"},
        {"number": "+2", "participant": "carrier-x", "label": "fraud", "time": "2025-05-01T00:00:00Z"},
        {"number": "+2", "participant": "carrier-y", "label": "fraud", "time": "2025-05-02T00:00:00Z"},
    ]
    before = replay(rows, method="ds", now=NOW)
    assert before.verdicts["+1"].action is Action.BLOCK
    moved = rows + [{"number": "+1", "participant": "carrier-x", "label": "reassigned", "time": "2025-05-20T00:00:00Z"}]
    after = replay(moved, method="ds", now=NOW)
    assert after.verdicts["+1"].action is Action.UNKNOWN and after.verdicts["+2"].action is Action.BLOCK


def test_the_cli_can_mount_replay_as_a_subcommand(tmp_path, capsys):
    import argparse

    from numrep.trust.replay import add_arguments, run

    path = tmp_path / "h.jsonl"
    _write_history(path, "jsonl")
    parser = argparse.ArgumentParser(prog="numrep")
    sub = parser.add_subparsers()
    command = sub.add_parser("replay")
    add_arguments(command)
    command.set_defaults(handler=run)
    args = parser.parse_args(["replay", str(path), "--limit", "-1"])
    assert args.handler(args) == 0
    assert "F1=" in capsys.readouterr().out
