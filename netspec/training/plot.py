"""metrics.png: a run's loss (and accuracy) per epoch, drawn by a callback when it ends.

matplotlib (the optional `plot` extra) is imported only when a plot is drawn; without it
nothing is drawn and a warning says so (the CLI prints sparklines instead). The figure is
drawn with the object-oriented API (no pyplot), so no GUI backend or global state is touched.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from netspec.training.atomic import write_atomically
from netspec.training.events import Callback, NonFiniteLossError, TrainResult

if TYPE_CHECKING:
    from netspec.training.state import RunState

MISSING_MATPLOTLIB = (
    'matplotlib is not installed: pip install -e ".[plot]" (or pip install matplotlib)'
)
# (title, [(metric, label)]) of each panel.
PANELS = (
    ("loss", [("loss", "training"), ("val_loss", "validation")]),
    ("accuracy", [("accuracy", "training"), ("val_accuracy", "validation")]),
)


def series(history: list[dict], metric: str) -> tuple[list[int], list[float]]:
    """The epochs that logged `metric`, and its values there."""
    points = [(m["epoch"], m[metric]) for m in history if m.get(metric) is not None]
    return [e for e, _ in points], [v for _, v in points]


def save_plot(history: list[dict], path: str | Path, title: str = "") -> Path | None:
    """Loss (and accuracy) per epoch as a PNG at `path`; None when matplotlib is missing."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    panels = [(name, lines) for name, lines in PANELS if series(history, lines[0][0])[0]]
    figure = Figure(figsize=(5.0 * len(panels), 3.6), dpi=100, layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, lines) in zip(axes, panels, strict=True):
        for metric, label in lines:
            epochs, values = series(history, metric)
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


class MetricsPlot(Callback):
    """Draws `metrics.png` in a run's folder from the run's history when the run ends (its
    path becomes `TrainResult.plot_path`), and when a NaN or infinite loss stops it: the
    curves so far often show the divergence coming. Problems are warnings, never errors.

    The trainer installs it ahead of the caller's callbacks whenever a run writes files, so
    theirs see `plot_path` in `on_train_end`.
    """

    def __init__(self, folder: Path, title: str, state: RunState, warn: Callable[[str], None]):
        self.path = folder / "metrics.png"
        self.title, self.state, self.warn = title, state, warn

    def on_train_end(self, result: TrainResult) -> None:
        result.plot_path = self.draw()

    def on_train_error(self, error: Exception) -> None:
        if isinstance(error, NonFiniteLossError):
            self.draw()

    def draw(self) -> Path | None:
        """The plot's path, or None (with a warning) when nothing could be drawn."""
        history, path = self.state.history, self.path
        if not history:
            return None
        if path.is_symlink():  # as metrics.jsonl: never write through a link
            self.warn(f"{path} skipped: it is a symbolic link")
            return None
        try:
            drawn = save_plot(history, path, title=self.title)
        except Exception as exc:  # matplotlib fails in many ways (fonts, backends, disks)
            self.warn(f"could not draw {path}: {exc}")
            return None
        if drawn is None:
            self.warn(f"{path} skipped: {MISSING_MATPLOTLIB}")
        return drawn
