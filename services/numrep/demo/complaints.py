"""Reading the FTC Do-Not-Call complaints and mapping their subjects to categories."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

from numrep.core.errors import InvalidNumber
from numrep.core.numbers import normalize

DATA_FILE = "ftc-dnc-complaints-2021-07-07.csv"

SUBJECT_CATEGORIES = {
    "calls pretending to be government": "fraud.impersonation",
    "dropped call or no message": "harassment.silent",
    "warranties": "marketing.warranty",
    "reducing your debt": "marketing.loans",
    "medical": "marketing.medical",
    "energy": "marketing",
    "computer": "fraud",
    "vacation": "marketing.travel",
    "charities": "marketing",
    "lotteries": "fraud",
    "home improvement": "marketing.real_estate",
    "work from home": "marketing.recruitment",
    "home security": "marketing",
}


@dataclass(frozen=True)
class Complaint:
    number: str  # E.164
    category: str
    robocall: bool
    when: datetime
    consumer: str  # city/state/area code + row: stands for one consumer


@dataclass
class ComplaintSet:
    complaints: list[Complaint] = field(default_factory=list)
    rows: int = 0
    invalid_numbers: int = 0

    def by_number(self) -> dict[str, list[Complaint]]:
        grouped: dict[str, list[Complaint]] = {}
        for c in self.complaints:
            grouped.setdefault(c.number, []).append(c)
        return grouped

    @staticmethod
    def top_category(complaints: list[Complaint]) -> str:
        counts = Counter(c.category for c in complaints)
        return min(counts, key=lambda code: (-counts[code], code))


def category_for(subject: str, robocall: bool) -> str:
    text = subject.strip().lower()
    for prefix, code in SUBJECT_CATEGORIES.items():
        if text.startswith(prefix):
            return code
    return "marketing.robocall" if robocall else "marketing"


def default_path() -> Path:
    return Path(str(resources.files("numrep.demo") / "data" / DATA_FILE))


def load(path: Path | None = None) -> ComplaintSet:
    result = ComplaintSet()
    with open(path or default_path(), newline="", encoding="utf-8") as f:
        for index, row in enumerate(csv.DictReader(f)):
            result.rows += 1
            try:
                number = normalize(row["Company_Phone_Number"], "US")
            except InvalidNumber:
                result.invalid_numbers += 1
                continue
            robocall = row.get("Recorded_Message_Or_Robocall", "").strip().upper() == "Y"
            when = _parse_time(row.get("Violation_Date") or row.get("Created_Date") or "")
            consumer = f"{row.get('Consumer_State', '')}/{row.get('Consumer_City', '')}/{row.get('Consumer_Area_Code', '')}/{index}"
            result.complaints.append(Complaint(number, category_for(row.get("Subject", ""), robocall), robocall, when, consumer))
    return result


def _parse_time(text: str) -> datetime:
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
    except ValueError:
        return datetime(2021, 7, 7, tzinfo=timezone.utc)
