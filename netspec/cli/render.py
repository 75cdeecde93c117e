"""Rich rendering of diagnostics and shape reports (the CLI's look; the library never prints)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from netspec.errors import Diagnostic
from netspec.frontend.shape_report import Row, ShapeReport
from netspec.types import Shape, format_shape
from netspec.wording import plural

if TYPE_CHECKING:  # the runtime, NumPy included: `netspec check` renders without loading it
    from netspec.training.bench import BenchResult

_SEVERITY_STYLE = {"error": "bold red", "warning": "bold yellow"}


def render_diagnostics(
    diagnostics: list[Diagnostic], console: Console, source_text: str | None = None
) -> None:
    """`FILE:LINE:COL: error[CODE]: message`, a caret excerpt on terminals, then the hint."""
    excerpts = source_text is not None and console.is_terminal
    for d in diagnostics:
        line = Text()
        line.append(f"{d.file}:{d.line}:{d.col}: ", style="bold")
        line.append(f"{d.severity}[{d.code}]", style=_SEVERITY_STYLE[d.severity])
        line.append(f": {d.message}")
        console.print(line, soft_wrap=True, highlight=False)
        if excerpts:
            for text in d.format(source_text).splitlines()[1:]:
                if not text.startswith("  hint:"):
                    console.print(Text(text, style="dim"), soft_wrap=True, highlight=False)
        if d.hint:
            console.print(Text(f"  hint: {d.hint}", style="cyan"), soft_wrap=True, highlight=False)
    errors = sum(d.is_error for d in diagnostics)
    warnings = len(diagnostics) - errors
    if diagnostics:
        summary = ", ".join(
            f"{n} {word}{'s' if n != 1 else ''}"
            for n, word in ((errors, "error"), (warnings, "warning"))
            if n
        )
        console.print(Text(summary, style="bold"), highlight=False)


def shape_text(shape: Shape | None) -> str:
    return "?" if shape is None else format_shape(shape)


def human_count(n: int) -> str:
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def human_bytes(n: int) -> str:
    for size, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


# rich measures and wraps every cell: 40,000 rows took 80 s. Past this many rows the table is
# drawn in the same box characters without measuring, one line per row, never wrapped.
PLAIN_TABLE_ROWS = 1_000


def plain_table(table: Table, rows: list[list[str]]) -> list[str]:
    """`table`'s columns and `rows` as lines in rich's HEAVY_HEAD box, widths from the text."""
    headers = [str(column.header) for column in table.columns]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    right = [column.justify == "right" for column in table.columns]

    def line(cells: list[str], bar: str) -> str:
        padded = (
            c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)
        )
        return bar + bar.join(f" {c} " for c in padded) + bar

    def rule(left: str, fill: str, cross: str, end: str) -> str:
        return left + cross.join(fill * (w + 2) for w in widths) + end

    return [
        rule("┏", "━", "┳", "┓"),
        line(headers, "┃"),
        rule("┡", "━", "╇", "┩"),
        *(line(r, "│") for r in rows),
        rule("└", "─", "┴", "┘"),
    ]


def render_report(report: ShapeReport, console: Console, rows: list[Row] | None = None) -> None:
    """A torchinfo-like table and totals, computed without running anything; `rows` (the
    report's folded to a depth) replace the report's own."""
    table = Table(
        title=f"{report.name}: input {shape_text(report.input_shape)}", title_justify="left"
    )
    table.add_column("Layer", style="bold")
    table.add_column("Type")
    if not report.chain:
        table.add_column("Inputs")
    table.add_column("Output shape")
    table.add_column("Params", justify="right")
    table.add_column("MACs", justify="right")
    shown = []
    for row in report.rows if rows is None else rows:
        inferred = ", ".join(f"{key}={value}" for key, value in row.inferred.items())
        cells = [row.name, f"{row.type} ({inferred})" if inferred else row.type]
        if not report.chain:
            cells.append(", ".join(row.inputs))
        cells += [shape_text(row.output_shape), f"{row.params:,}", human_count(row.macs)]
        shown.append(cells)
    if len(shown) > PLAIN_TABLE_ROWS:
        console.print(table.title, highlight=False, soft_wrap=True)
        for line in plain_table(table, shown):
            console.print(line, highlight=False, soft_wrap=True, markup=False)
    else:
        for cells in shown:
            table.add_row(*cells)
        console.print(table)
    t = report.totals
    per = "per sample" if report.batch_size is None else f"batch {report.batch_size}"
    shapes = zip(report.outputs, report.output_shapes, strict=True)
    outputs = ", ".join(f"{name} {shape_text(s)}" for name, s in shapes)
    lines = [
        ("Output", outputs),
        ("Total params", f"{t.params:,}"),
        ("Trainable params", f"{t.trainable_params:,}"),
        (f"MACs ({per})", human_count(t.macs)),
        ("Params size", human_bytes(t.param_bytes)),
        (f"Forward activations ({per})", human_bytes(t.activation_bytes)),
    ]
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        console.print(f"{key:<{width}}  {value}", highlight=False)


def render_bench(result: BenchResult, console: Console) -> None:
    """Per-layer forward/backward milliseconds and their share of the timed layers."""
    table = Table(
        title=f"{result.spec} on {result.device}, batch {result.batch_size}, "
        f"median of {plural(result.repeats, 'step')}",
        title_justify="left",
    )
    for column in ("Layer", "Type", "Forward ms", "Backward ms", "Share"):
        table.add_column(column, justify="left" if column in ("Layer", "Type") else "right")
    total = sum(t.forward_ms + t.backward_ms for t in result.layers) or 1.0
    for t in result.layers:
        share = (t.forward_ms + t.backward_ms) / total
        table.add_row(t.name, t.type, f"{t.forward_ms:.3f}", f"{t.backward_ms:.3f}", f"{share:.1%}")
    console.print(table)
    if result.note:
        console.print(f"note: {result.note}", highlight=False, soft_wrap=True)
    parts = "forward, loss, backward, update" if result.loss else "forward, backward, update"
    console.print(f"{f'step ({parts})':<40}{result.step_ms:.2f} ms", highlight=False)
    console.print(
        f"throughput                              {result.samples_per_second:,.0f} samples/s",
        highlight=False,
    )
