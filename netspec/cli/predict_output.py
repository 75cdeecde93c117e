"""What `netspec predict` shows and writes: a short table, an .npz or a .csv file, and a
progress bar while a long input runs."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from netspec.errors import NetspecError
from netspec.training.atomic import write_atomically
from netspec.training.predict import BatchDone, Prediction

SHOWN = 10  # predictions in the table on stdout
BAR_AFTER = 4  # batches: fewer finish before a bar would be worth drawing
OUTPUT_SUFFIXES = (".npz", ".csv")


def check_output_path(path: Path) -> None:
    """Refuse an output file of an unknown kind before any work is done."""
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise NetspecError(
            f"cannot write predictions to {path}: -o takes a .npz or a .csv file",
        )


def deliver(prediction: Prediction, path: Path | None, out: Console, err: Console) -> None:
    """Warnings on stderr, then the predictions written to `path`, or without one, a table
    of the first on stdout."""
    for warning in prediction.warnings or []:
        err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    if path is None:
        render_predictions(prediction, out)
        return
    write_predictions(path, prediction)
    count = len(prediction.output)
    err.print(f"wrote {count} predictions to {escape(str(path))}", highlight=False, soft_wrap=True)


def write_predictions(path: Path, prediction: Prediction) -> None:
    """`path` (.npz or .csv, see check_output_path) appears whole or not at all."""
    if path.suffix.lower() == ".npz":
        arrays = prediction.arrays()
        write = lambda file: np.savez(file, **arrays)  # noqa: E731
    else:
        text = csv_text(prediction).encode("utf-8")
        write = lambda file: file.write(text)  # noqa: E731
    try:
        write_atomically(path, write)
    except OSError as exc:
        raise NetspecError(f"cannot write {path}: {exc.strerror or exc}") from None


def csv_text(prediction: Prediction) -> str:
    """One row a sample under a header: label and per-class probabilities for
    classification, else the output's values flattened (output_0, output_1, ...)."""
    n = len(prediction.output)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if prediction.label is not None and prediction.probabilities is not None:
        labels = prediction.label.reshape(n, -1)
        probabilities = prediction.probabilities.reshape(n, prediction.probabilities.shape[1], -1)
        classes, positions = probabilities.shape[1:]
        if positions == 1:
            probability_columns = _columns("probability", classes)
        else:  # a class per position (e.g. per pixel): probability_<class>_<position>
            probability_columns = [
                f"probability_{c}_{i}" for c in range(classes) for i in range(positions)
            ]
        writer.writerow(_columns("label", labels.shape[1]) + probability_columns)
        flat = probabilities.reshape(n, -1)
        for label_row, probability_row in zip(labels, flat, strict=True):
            writer.writerow([*map(int, label_row), *map(repr, map(float, probability_row))])
    else:
        values = prediction.output.reshape(n, -1)
        writer.writerow(_columns("output", values.shape[1]))
        for row in values:
            writer.writerow([repr(float(v)) for v in row])
    return buffer.getvalue()


def _columns(name: str, count: int) -> list[str]:
    return [name] if count == 1 else [f"{name}_{i}" for i in range(count)]


def render_predictions(prediction: Prediction, console: Console) -> None:
    """The first predictions as a table, and a line saying how many there were."""
    n = len(prediction.output)
    table = Table(show_edge=False, header_style="bold")
    table.add_column("sample", justify="right")
    classified = prediction.label is not None and prediction.probabilities is not None
    if classified:
        table.add_column("label", justify="right")
        table.add_column("probability", justify="right")
    table.add_column("output")
    for index in range(min(n, SHOWN)):
        row = [str(index)]
        if classified:
            label = prediction.label[index]  # type: ignore[index]
            row.append(_short(label))
            if label.ndim == 0:
                row.append(f"{float(prediction.probabilities[index, int(label)]):.4f}")  # type: ignore[index]
            else:
                row.append("")
        row.append(_short(prediction.output[index]))
        table.add_row(*row)
    console.print(table)
    more = f", the first {SHOWN} shown" if n > SHOWN else ""
    console.print(f"{n} prediction{'s' if n != 1 else ''}{more}", highlight=False)


def _short(values: np.ndarray, count: int = 6) -> str:
    """A few of an array's values, on one line."""
    flat = np.asarray(values).reshape(-1)
    if flat.dtype.kind in "iu":
        text = " ".join(str(int(v)) for v in flat[:count])
    else:
        text = " ".join(f"{float(v):.4g}" for v in flat[:count])
    return text + (" …" if flat.size > count else "")


@contextmanager
def prediction_progress(console: Console) -> Iterator[BatchDone | None]:
    """A progress bar on a terminal, drawn once an input has more than a few batches;
    elsewhere (a pipe, a log) nothing."""
    if not console.is_terminal:
        yield None
        return
    progress = Progress(
        TextColumn("predicting"),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    task = None

    def on_batch(done: int, total: int) -> None:
        nonlocal task
        if total <= BAR_AFTER:
            return
        if task is None:
            progress.start()
            task = progress.add_task("batches", total=total)
        progress.update(task, completed=done)

    try:
        yield on_batch
    finally:
        progress.stop()
