"""How training and evaluation look in the terminal (the library itself never prints).

`progress_for(console)` picks rich progress bars on a terminal (epoch and batch bars with
running loss, accuracy, samples/s and ETA, one summary line per epoch kept above them)
or plain lines elsewhere (one per epoch, good for logs and CI). `render_history`,
`render_evaluation` and `render_sparklines` draw the final tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from netspec.cli.plot import sparklines
from netspec.training.events import Callback, EvalResult, RunInfo, TrainResult
from netspec.wording import plural

# (metric, header, format) of the epoch line and the final table, in order.
_COLUMNS = (
    ("loss", "loss", "{:.4f}"),
    ("accuracy", "acc", "{:.2%}"),
    ("val_loss", "val_loss", "{:.4f}"),
    ("val_accuracy", "val_acc", "{:.2%}"),
    ("lr", "lr", "{:.3g}"),
    ("seconds", "time", "{:.1f}s"),
)


def _format(metric: str, value: Any) -> str:
    if value is None:
        return "-"
    return next(fmt for name, _, fmt in _COLUMNS if name == metric).format(value)


def epoch_line(metrics: dict, epochs: int) -> str:
    """`epoch 3/15  loss 0.0458  acc 98.61%  val_loss 0.0512  val_acc 98.89%  lr 0.0018  4.2s`"""
    width = len(str(epochs))
    parts = [f"epoch {metrics['epoch']:>{width}}/{epochs}"]
    for metric, header, _ in _COLUMNS:
        if metric in metrics:
            value = _format(metric, metrics[metric])
            parts.append(value if metric == "seconds" else f"{header} {value}")
    return "  ".join(parts)


def run_line(run: RunInfo) -> str:
    """What is about to happen, and where the run's files go, in one line."""
    validation = f", {run.val_samples} for validation" if run.val_samples else ""
    resumed = (
        f", resuming {run.resumed_from} at epoch {run.start_epoch + 1}" if run.resumed_from else ""
    )
    size = min(run.batch_size, run.train_samples)
    clipped = ""
    if size < run.batch_size:
        clipped = f" (batch size {run.batch_size} clipped to the {plural(size, 'training sample')})"
    samples = plural(run.train_samples, f"{run.data_name} sample")
    batches = plural(run.batches, "batch", "batches")
    folder = f"; run folder {run.out}" if run.out is not None else ""
    return (
        f"training {run.spec_name} on {run.device}: {samples}{validation}, "
        f"{batches} of {size}{clipped}, {plural(run.epochs, 'epoch')}{resumed}{folder}"
    )


def _running_text(logs: dict) -> str:
    parts = [f"loss {logs['loss']:.4f}"]
    if "accuracy" in logs:
        parts.append(f"acc {logs['accuracy']:.2%}")
    parts.append(f"{logs['samples_per_second']:,.0f} samples/s")
    return "  ".join(parts)


class PlainProgress(Callback):
    """One line per epoch, plus the start, warnings and checkpoints: for logs and pipes."""

    def __init__(self, console: Console):
        self.console = console
        self.epochs = 0

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _print(self, text: str, style: str | None = None) -> None:
        self.console.print(Text(text, style=style or ""), soft_wrap=True, highlight=False)

    def on_train_start(self, run: RunInfo) -> None:
        self.epochs = run.epochs
        self._print(run_line(run))

    def on_epoch_end(self, epoch: int, metrics: dict) -> None:
        self._print(epoch_line(metrics, self.epochs))

    def on_warning(self, message: str) -> None:
        self._print(f"warning: {message}", "yellow")


class RichProgress(PlainProgress):
    """Epoch and batch progress bars; epoch lines scroll above them."""

    def __init__(self, console: Console):
        super().__init__(console)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self.epoch_task: Any = None
        self.batch_task: Any = None

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _print(self, text: str, style: str | None = None) -> None:
        self.progress.console.print(Text(text, style=style or ""), soft_wrap=True, highlight=False)

    def on_train_start(self, run: RunInfo) -> None:
        super().on_train_start(run)
        self.epoch_task = self.progress.add_task(
            "epochs", total=run.epochs, completed=run.start_epoch, info=""
        )
        self.batch_task = self.progress.add_task("batches", total=run.batches, info="")

    def on_epoch_start(self, epoch: int, batches: int) -> None:
        self.progress.reset(self.batch_task, total=batches, info="")
        self.progress.update(self.epoch_task, description=f"epoch {epoch}/{self.epochs}")

    def on_batch_end(self, epoch: int, batch: int, batches: int, logs: dict) -> None:
        self.progress.update(self.batch_task, completed=batch, info=_running_text(logs))

    def on_epoch_end(self, epoch: int, metrics: dict) -> None:
        super().on_epoch_end(epoch, metrics)
        summary = "  ".join(
            f"{header} {_format(name, metrics[name])}"
            for name, header, _ in _COLUMNS[2:4]
            if name in metrics
        )
        self.progress.update(self.epoch_task, completed=epoch, info=summary)


def progress_for(console: Console) -> PlainProgress:
    """Rich bars on a terminal, plain lines otherwise."""
    return RichProgress(console) if console.is_terminal else PlainProgress(console)


# -- final output -------------------------------------------------------------------------
def render_history(result: TrainResult, console: Console) -> None:
    """The metrics of every epoch as a table; the best epoch is marked with *."""
    history = result.history
    if not history:
        return
    present = [c for c in _COLUMNS if any(c[0] in m for m in history)]
    table = Table(title="training", title_justify="left", show_edge=False)
    table.add_column("epoch", justify="right")
    for _, header, _ in present:
        table.add_column(header, justify="right")
    best_epoch = result.best["epoch"] if result.best else None
    for m in history:
        mark = "*" if m["epoch"] == best_epoch else ""
        table.add_row(
            f"{m['epoch']}{mark}", *(_format(name, m.get(name)) for name, _, _ in present)
        )
    console.print(table)
    if result.best:
        best = result.best
        value = _format(best["monitor"], best["value"])
        console.print(
            f"best {best['monitor']} {value} at epoch {best['epoch']} (*)", highlight=False
        )
    if result.stopped == "early_stopping":
        console.print(f"stopped early after epoch {result.epochs}", highlight=False)


def show_training(result: TrainResult, console: Console) -> None:
    """The end of a finished `netspec train`: the history table, curves and files."""
    render_history(result, console)
    if result.plot_path is None:
        render_sparklines(result.history, console)
    render_files(result, console)


def interrupt_line(result: TrainResult) -> str:
    """`interrupted at epoch 3, batch 12: saved runs/x/last.npz; resume with --resume ...`"""
    where = f"the end of epoch {result.epochs}"
    if result.batch:
        where = f"epoch {result.epochs + 1}, batch {result.batch}"
    what = "terminated (SIGTERM)" if result.signal == "SIGTERM" else "interrupted"
    path = result.last_checkpoint
    if path is None:
        return f"{what} at {where}: no checkpoint was saved"
    saved = "saved" if result.saved_on_interrupt else "the last checkpoint is"
    return f"{what} at {where}: {saved} {path}; resume with --resume {path}"


def render_files(result: TrainResult, console: Console) -> None:
    """Where the checkpoints, the metrics log and the plot are."""
    rows = [
        ("best checkpoint", result.best_checkpoint),
        ("last checkpoint", result.last_checkpoint),
        ("metrics log", result.metrics_path),
        ("plot", result.plot_path),
    ]
    for label, path in rows:
        if path is not None:
            console.print(f"{label + ':':<17}{escape(str(path))}", highlight=False, soft_wrap=True)


def render_sparklines(history: list[dict], console: Console) -> None:
    """The terminal stand-in for the PNG plot."""
    for metric, line, first, last in sparklines(history):
        console.print(
            f"{metric:>13} {line}  {_format(metric, first)} -> {_format(metric, last)}",
            highlight=False,
        )


def render_evaluation(result: EvalResult, spec_name: str, weights: Path, console: Console) -> None:
    """Loss, accuracy and the confusion matrix of an evaluation."""
    epoch = f" (epoch {result.checkpoint_epoch})" if result.checkpoint_epoch else ""
    console.print(
        f"{escape(spec_name)}: {escape(str(weights))}{epoch} on "
        f"{plural(result.samples, result.split + ' sample')}",
        highlight=False,
    )
    console.print(f"loss      {result.loss:.4f}", highlight=False)
    if result.accuracy is not None:
        console.print(f"accuracy  {result.accuracy:.2%}", highlight=False)
    recorded = result.recorded or {}
    logged = [
        f"{header} {_format(name, recorded[name])}"
        for name, header, _ in _COLUMNS[2:4]
        if recorded.get(name) is not None
    ]
    if logged and result.split == "validation":
        console.print(f"(logged in training: {'  '.join(logged)})", highlight=False)
    if result.confusion is not None:
        console.print(confusion_table(result.confusion))


def confusion_table(matrix: np.ndarray) -> Table:
    """Rows: true class; columns: predicted class; the diagonal in bold."""
    classes = len(matrix)
    table = Table(title="confusion matrix (rows: true, columns: predicted)", title_justify="left")
    table.add_column("true", justify="right", style="bold")
    for c in range(classes):
        table.add_column(str(c), justify="right")
    table.add_column("recall", justify="right")
    for t in range(classes):
        total = int(matrix[t].sum())
        recall = f"{matrix[t, t] / total:.1%}" if total else "-"
        cells = [
            Text(
                str(int(matrix[t, p])),
                style="bold green" if t == p else ("red" if matrix[t, p] else "dim"),
            )
            for p in range(classes)
        ]
        table.add_row(str(t), *cells, recall)
    return table
