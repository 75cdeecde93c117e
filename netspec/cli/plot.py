"""Training curves: a PNG through matplotlib (the optional `plot` extra), or sparklines.

matplotlib is imported only here and only when a plot is drawn; without it `save_plot`
returns None and callers show `sparklines` in the terminal instead. The figure is drawn
with the object-oriented API (no pyplot), so no GUI backend or global state is touched.
"""

from __future__ import annotations

import math
from pathlib import Path

from netspec.training.atomic import write_atomically

MISSING_MATPLOTLIB = (
    'matplotlib is not installed: pip install -e ".[plot]" (or pip install matplotlib)'
)
_BARS = "▁▂▃▄▅▆▇█"
# (title, [(metric, label)]) of each panel.
_PANELS = (
    ("loss", [("loss", "training"), ("val_loss", "validation")]),
    ("accuracy", [("accuracy", "training"), ("val_accuracy", "validation")]),
)


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _series(history: list[dict], metric: str) -> tuple[list[int], list[float]]:
    points = [(m["epoch"], m[metric]) for m in history if m.get(metric) is not None]
    return [e for e, _ in points], [v for _, v in points]


def save_plot(history: list[dict], path: str | Path, title: str = "") -> Path | None:
    """Loss (and accuracy) per epoch as a PNG at `path`; None when matplotlib is missing."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    panels = [(name, lines) for name, lines in _PANELS if _series(history, lines[0][0])[0]]
    figure = Figure(figsize=(5.0 * len(panels), 3.6), dpi=100, layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, lines) in zip(axes, panels, strict=True):
        for metric, label in lines:
            epochs, values = _series(history, metric)
            if epochs:
                ax.plot(epochs, values, marker="o", markersize=3, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        figure.suptitle(title)
    path = Path(path)
    write_atomically(path, lambda file: figure.savefig(file, format="png"))
    return path


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
    for _, metrics in _PANELS:
        for metric, _ in metrics:
            _, values = _series(history, metric)
            if values:
                lines.append(
                    (metric, sparkline([m.get(metric) for m in history]), values[0], values[-1])
                )
    return lines
