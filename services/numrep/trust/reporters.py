"""End users' flags: reporter reputations and an app's aggregate vote.

End users are not independent voters. Each reporter (a pseudonym within one
app) has a Beta reputation from how often the federation confirmed its flags:
a flag on a number that the rest of the federation (everything but this app's
own users) believes spam counts ``2 * P(spam) - 1`` towards agreement if it
said spam, towards disagreement if it said legitimate; a number the federation
has no opinion on (``P(spam) = 0.5``) counts for neither.

A reporter's weight is ``cap * (2 * mean - 1)`` clipped at 0: chance-level or
worse counts nothing, a perfect long record counts ``cap``. A reporter with no
confirmed record yet is a newcomer: it counts ``newcomer_weight``, and all the
newcomers of one app on one number together count at most ``newcomer_cap``.

An app's flags on a number are ONE vote of the pseudo-source ``app-x/flags``
per polarity, whose strength saturates in the weighted reporters:
``strength = 1 - exp(-W / saturation)``. Its reliability is then learned by EM
like any participant's. So a swarm of new reporters adds at most
``1 - exp(-newcomer_cap / saturation)`` of one vote of one source (about a
tenth with the defaults: a thousand new reporters count as one new reporter),
and that source's contribution to a verdict is further capped like any single
participant's. Established reporters count fast: one with a clean record of
a few confirmed flags makes most of a vote.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

FLAGS_SUFFIX = "/flags"


def flags_source(app_id: str) -> str:
    """The pseudo-source name under which an app's users' flags are learned."""
    return app_id + FLAGS_SUFFIX


def principal_of(source: str) -> str:
    """The participant answerable for a source: an app for its users' flags."""
    return source[: -len(FLAGS_SUFFIX)] if source.endswith(FLAGS_SUFFIX) else source


def is_flags_source(source: str) -> bool:
    return source.endswith(FLAGS_SUFFIX)


@dataclass(frozen=True)
class ReporterConfig:
    prior_agree: float = 1.0
    prior_disagree: float = 1.0
    min_history: float = 1.0  # confirmed-flag evidence before a reporter is no longer a newcomer
    weight_cap: float = 1.0  # most one reporter can count
    newcomer_weight: float = 0.05
    newcomer_cap: float = 0.05  # most all newcomers of one app can count on one number, together (= one newcomer)
    saturation: float = 0.5  # weighted reporters for 63% of a full vote
    half_life: timedelta = timedelta(days=60)  # decay of a flag at verdict time


def reporter_weight(agree: float, disagree: float, config: ReporterConfig) -> tuple[float, bool]:
    """(weight, established) of a reporter with this soft record."""
    if agree + disagree < config.min_history:
        return config.newcomer_weight, False
    mean = (config.prior_agree + agree) / (config.prior_agree + config.prior_disagree + agree + disagree)
    return config.weight_cap * max(0.0, 2.0 * mean - 1.0), True


def reporter_weights(agree: np.ndarray, disagree: np.ndarray, config: ReporterConfig) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised ``reporter_weight``: (weights, established mask)."""
    established = (agree + disagree) >= config.min_history
    mean = (config.prior_agree + agree) / (config.prior_agree + config.prior_disagree + agree + disagree)
    weight = np.where(established, config.weight_cap * np.clip(2.0 * mean - 1.0, 0.0, None), config.newcomer_weight)
    return weight, established


def vote_strength(established_weight: float, newcomer_weight: float, config: ReporterConfig) -> float:
    """Strength in [0, 1) of an app's vote from the summed (decayed) weights of
    its established reporters and of its newcomers."""
    total = established_weight + min(newcomer_weight, config.newcomer_cap)
    return 1.0 - math.exp(-total / config.saturation)


def vote_strengths(established_weight: np.ndarray, newcomer_weight: np.ndarray, config: ReporterConfig) -> np.ndarray:
    total = established_weight + np.minimum(newcomer_weight, config.newcomer_cap)
    return -np.expm1(-total / config.saturation)


def agreement(posterior_without_app: np.ndarray, said_spam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(agree, disagree) evidence of each flag given the federation's belief
    without the flagging app's own users."""
    lean = 2.0 * posterior_without_app - 1.0
    signed = np.where(said_spam, lean, -lean)
    return np.clip(signed, 0.0, None), np.clip(-signed, 0.0, None)


class ReporterRecords(Mapping[tuple[str, str], tuple[float, float]]):
    """Each app reporter's record in a trust snapshot, ``(app, reporter) -> (agree,
    disagree)``, kept compact: per app, its reporters' ids in sorted order and two
    arrays of floats. A national app's users make this millions of entries, held by
    every serving process and parsed at every new epoch: as a dict of tuples it cost
    about 484 bytes and 2-3 us an entry, the snapshot's JSON as many [app, reporter,
    agree, disagree] lists."""

    def __init__(self, by_app: Mapping[str, tuple[Sequence[str], Sequence[float], Sequence[float]]] | None = None) -> None:
        self._by_app: dict[str, tuple[list[str], np.ndarray, np.ndarray]] = {}
        for app, (ids, agree, disagree) in sorted((by_app or {}).items()):
            order = sorted(range(len(ids)), key=ids.__getitem__)
            self._by_app[app] = ([ids[i] for i in order], np.asarray(agree, dtype=np.float64)[order],
                                 np.asarray(disagree, dtype=np.float64)[order])
        self._len = sum(len(ids) for ids, _, _ in self._by_app.values())

    @classmethod
    def of(cls, records: Mapping[tuple[str, str], tuple[float, float]] | Iterable[tuple[str, str, float, float]]) -> "ReporterRecords":
        """From a mapping like this one, or from (app, reporter, agree, disagree) rows."""
        if isinstance(records, ReporterRecords):
            return records
        rows = ((app, rep, a, d) for (app, rep), (a, d) in records.items()) if isinstance(records, Mapping) else records
        by_app: dict[str, tuple[list[str], list[float], list[float]]] = {}
        for app, rep, a, d in rows:
            ids, agree, disagree = by_app.setdefault(app, ([], [], []))
            ids.append(rep)
            agree.append(a)
            disagree.append(d)
        return cls(by_app)

    def __getitem__(self, key: tuple[str, str]) -> tuple[float, float]:
        app, reporter = key
        held = self._by_app.get(app)
        if held is not None:
            ids, agree, disagree = held
            at = bisect.bisect_left(ids, reporter)
            if at < len(ids) and ids[at] == reporter:
                return float(agree[at]), float(disagree[at])
        raise KeyError(key)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for app, (ids, _, _) in self._by_app.items():
            for reporter in ids:
                yield app, reporter

    def __len__(self) -> int:
        return self._len

    def to_json_body(self) -> dict[str, list[list[Any]]]:
        """``{app: [[reporter ids], [agree], [disagree]]}``, ids sorted."""
        return {app: [ids, agree.tolist(), disagree.tolist()] for app, (ids, agree, disagree) in self._by_app.items()}

    def __repr__(self) -> str:
        return f"ReporterRecords({len(self)} reporters of {len(self._by_app)} apps)"
