"""Training curves in the terminal: sparklines, the stand-in for metrics.png where no
plot was drawn (the PNG itself is the trainer's: netspec.training.plot.MetricsPlot).
"""

from __future__ import annotations

import math

from netspec.training.plot import PANELS, series

_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float | None]) -> str:
    """One character per value, ▁ (lowest) to █ (highest); a gap for a missing value."""
    present = [v for v in values if v is not None and math.isfinite(v)]
    if not present:
        return ""
    low, high = min(present), max(present)
    span = high - low
    chars = []
    for value in values:
        if value is None or not math.isfinite(value):
            chars.append(" ")
        elif span == 0:
            chars.append(_BARS[len(_BARS) // 2])
        else:
            chars.append(_BARS[round((value - low) / span * (len(_BARS) - 1))])
    return "".join(chars)


def sparklines(history: list[dict]) -> list[tuple[str, str, float, float]]:
    """(metric, sparkline, first value, last value) for each metric the history has."""
    lines = []
    for _, metrics in PANELS:
        for metric, _ in metrics:
            _, values = series(history, metric)
            if values:
                lines.append(
                    (metric, sparkline([m.get(metric) for m in history]), values[0], values[-1])
                )
    return lines
