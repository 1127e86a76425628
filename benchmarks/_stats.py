"""Small numeric helpers: percentiles, ratios and the formatting of the table.

Nothing here judges a number against a threshold at run time except the
"target holds?" column, which is reported, never asserted.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence


def percentiles(samples_ms: Sequence[float], points: Iterable[float] = (50, 99, 99.9)) -> dict[str, float | None]:
    """Nearest-rank percentiles of ``samples_ms`` (already in milliseconds)."""
    ordered = sorted(samples_ms)
    out: dict[str, float | None] = {"n": len(ordered)}
    for point in points:
        key = "p" + (f"{point:g}".replace(".", ""))
        if not ordered:
            out[key] = None
            continue
        rank = max(1, math.ceil(point / 100.0 * len(ordered)))
        out[key] = ordered[min(rank, len(ordered)) - 1]
    out["max"] = ordered[-1] if ordered else None
    out["mean"] = (sum(ordered) / len(ordered)) if ordered else None
    return out


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator in (None, 0):
        return None
    return numerator / denominator


def fmt_num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def fmt_spread(ratio: dict) -> str:
    """A paired ratio (``_measure.paired_ratio``) as ' [min-max]' over its rounds, or '' for fewer than two."""
    if ratio.get("min") is None or len(ratio.get("rounds", [])) < 2:
        return ""
    return f" [{ratio['min']:.2f}-{ratio['max']:.2f}]"


def fmt_paired(ratio: dict) -> str:
    """A paired ratio as 'median x [min-max]'."""
    return fmt_ratio(ratio.get("median")) + fmt_spread(ratio)


def fmt_pcts(stats: dict | None, keys: Sequence[str] = ("p50", "p99", "p999")) -> str:
    if not stats:
        return "-"
    text = " / ".join(fmt_ms(stats.get(k)) for k in keys)
    if stats.get("lower_bound"):
        text = ">= " + text
    return text


def fmt_mb(value_bytes: float | None) -> str:
    return "-" if value_bytes is None else f"{value_bytes / 1e6:,.1f} MB"


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    cells = [list(map(str, header))] + [list(map(str, r)) for r in rows]
    widths = [max(len(row[i]) if i < len(row) else 0 for row in cells) for i in range(len(header))]
    lines = []
    for index, row in enumerate(cells):
        padded = [(row[i] if i < len(row) else "").ljust(widths[i]) if i == 0 else (row[i] if i < len(row) else "").rjust(widths[i])
                  for i in range(len(header))]
        lines.append("  ".join(padded).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def fmt_gc(pauses: dict[str, dict[str, float]]) -> str:
    """GC pauses as 'gen0 n (max x ms), ... [objects tracked, frozen]'; 'no pass' when the collector did not run."""
    heap = pauses.get("heap")
    passes = ", ".join(f"gen{gen} {int(p['count'])} (max {p['max_ms']:.1f} ms)" for gen, p in pauses.items() if gen != "heap")
    walked = f" [{heap['tracked']:,.0f} objects tracked, {heap['frozen']:,.0f} frozen]" if heap else ""
    return (passes or "no pass") + walked


def fmt_gc_pair(result: dict) -> str:
    """A load phase's GC pauses: the server's, then the load generator's."""
    return f"{fmt_gc(result['server_gc'])} | {fmt_gc(result['client_gc'])}"


def server_ms_per_call(closed: dict) -> float | None:
    """A closed-loop phase's server CPU (cores) over its calls per second: ms of server CPU a call."""
    if not closed.get("qps") or closed.get("server_cpu") is None:
        return None
    return 1000.0 * closed["server_cpu"] / closed["qps"]


def fmt_server_ms(closed: dict) -> str:
    value = server_ms_per_call(closed)
    return "-" if value is None else f"{value:.2f}"
