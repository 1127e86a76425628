"""What every scenario gets: the profile's sizes, a per-run temporary
directory, a fresh federation, and datasets shared within one run."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from benchmarks import _fixtures as fx


@dataclass(frozen=True)
class Sizes:
    # lookup_cached / batch_lookup / scale_out
    lookup_numbers: int = 20_000
    concurrency: int = 64
    warmup: float = 0.3
    rounds: int = 3               # interleaved closed-loop rounds per variant
    closed_seconds: float = 1.5   # per round
    open_rounds: int = 2          # interleaved open-loop rounds per variant and load level
    open_seconds: float = 2.0     # per round
    batch_seconds: float = 3.0   # per round
    batch_concurrency: int = 2
    scale_seconds: float = 2.0   # per round
    scale_channels: int = 8
    # sync
    sync_labels: int = 200_000
    handset_labels: int = 3_000
    inproc_sync_seconds: float = 6.0
    # publish_ingest
    publish_batches: int = 4  # of 500 labels, per key type
    # data_scale
    data_numbers: int = 1_000_000
    data_rate: float = 4_000.0
    data_seconds: float = 6.0
    # lookup_cassandra
    cassandra_numbers: int = 3_000
    cassandra_seconds: float = 4.0
    cassandra_concurrency: int = 32


QUICK = Sizes()
FULL = Sizes(
    lookup_numbers=100_000, rounds=5, closed_seconds=4.0, open_rounds=4, open_seconds=8.0, warmup=1.0, batch_seconds=5.0, scale_seconds=8.0,
    sync_labels=10_000_000, handset_labels=20_000, inproc_sync_seconds=20.0,
    publish_batches=20,
    data_numbers=10_000_000, data_seconds=30.0,
    cassandra_numbers=50_000, cassandra_seconds=15.0,
)


@dataclass(frozen=True)
class LookupDataset:
    data_dir: Path
    count: int
    queries: list[str]          # numbers with stored verdicts, in random order
    build: dict


@dataclass
class Ctx:
    full: bool
    tmp: Path
    results_dir: Path
    stamp: str
    profile: bool
    sizes: Sizes
    fed: fx.Federation
    exact_data: bool = False
    cache: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def log(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:7.1f}s] {message}", file=sys.stderr, flush=True)

    @property
    def area_codes(self) -> list[str]:
        if "area_codes" not in self.cache:
            self.cache["area_codes"] = fx.ftc_area_codes()
        return self.cache["area_codes"]

    @property
    def templates(self) -> list:
        if "templates" not in self.cache:
            self.cache["templates"] = fx.verdict_templates(self.fed)
        return self.cache["templates"]

    def lookup_dataset(self) -> LookupDataset:
        """N numbers with stored verdicts (SQLite), shared by the lookup scenarios of one run."""
        if "lookup" not in self.cache:
            count = self.sizes.lookup_numbers
            data_dir = self.tmp / "lookup"
            self.log(f"building the lookup dataset: {count:,} numbers with stored verdicts")
            build = fx.build_store(data_dir, self.fed, count, area_codes=self.area_codes, templates=self.templates,
                                   exact=self.exact_data, log=self.log)
            queries = fx.sample_numbers(self.area_codes, count, count, seed=11)
            build["valid_fraction"] = fx.spot_check(queries)
            self.cache["lookup"] = LookupDataset(data_dir, count, queries, build)
        return self.cache["lookup"]

    def profile_path(self, scenario: str, what: str) -> str:
        return str(self.results_dir / f"{self.stamp}-{scenario}-{what}.prof.txt")


Scenario = Callable[[Ctx], dict]
