"""The `netspec` command line (typer + rich). The only place that prints or exits.

Every error netspec knows about becomes readable lines on stderr and exit code 1, in one
place (exits.errors_exit, around every command through `command`); bad usage is exit 2
(typer's); anything else escaping would be a bug.
"""

from __future__ import annotations

import atexit
import functools
import json
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from netspec.cli.exits import (
    CommandError,
    err,
    errors_exit,
    ignore_signals,
    signals_ignored,
)
from netspec.errors import Diagnostic, SpecError
from netspec.frontend.json_schema import SCHEMA_PATH
from netspec.version import __version__

app = typer.Typer(
    name="netspec",
    help="Check, train, evaluate and benchmark networks described in YAML.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()


def _print_version(value: bool) -> None:
    if value:
        out.print(f"netspec {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Check, train, evaluate and benchmark networks described in YAML."""


SpecArg = Annotated[
    Path, typer.Argument(metavar="SPEC", help="The spec file (YAML).", show_default=False)
]


def _source_text(path: Path) -> str | None:
    from netspec.frontend.source import read_text

    try:
        return read_text(path)
    except SpecError:
        return None


Command = TypeVar("Command", bound=Callable[..., Any])


def command(name: str | None = None, *, interrupted: str | None = None) -> Callable:
    """`app.command`, with `errors_exit` around the command."""

    def register(function: Command) -> Command:
        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            with errors_exit(interrupted):
                return function(*args, **kwargs)

        app.command(name)(run)
        return function

    return register


def show_diagnostics(diagnostics: list[Diagnostic], path: Path) -> None:
    from netspec.cli.render import render_diagnostics

    render_diagnostics(diagnostics, err, _source_text(path))


def load_spec(path: Path):
    """Load a spec or exit 1 with its diagnostics; warnings are shown either way."""
    from netspec.frontend.load import load

    try:
        spec = load(path)
    except SpecError as exc:
        show_diagnostics(exc.diagnostics, path)
        raise typer.Exit(1) from None
    if spec.warnings:
        show_diagnostics(spec.warnings, path)
    return spec


@command()
def check(
    spec_path: SpecArg,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", "-b", min=1, help="Concrete batch size.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Fail on warnings too.")] = False,
    depth: Annotated[
        int | None,
        typer.Option(
            "--depth", min=1, help="Fold rows below this depth into their block (torchinfo's)."
        ),
    ] = None,
) -> None:
    """Validate a spec, infer every shape, and print the shape report."""
    from netspec.frontend.load import load
    from netspec.frontend.shape_report import folded_rows, infer

    diagnostics: list[Diagnostic] = []
    report = None
    try:
        spec = load(spec_path)
        diagnostics = spec.warnings
        report = infer(spec, batch_size)
    except SpecError as exc:
        diagnostics = exc.diagnostics
    failed = report is None or (strict and bool(diagnostics))
    if as_json:
        document = {
            "spec": str(spec_path),
            "ok": not failed,
            "diagnostics": [d.to_dict() for d in diagnostics],
            "report": report.to_dict() if report else None,
        }
        out.print_json(json.dumps(document))
    else:
        if diagnostics:
            show_diagnostics(diagnostics, spec_path)
        if report is not None:
            from netspec.cli.render import render_report

            rows = None if depth is None else folded_rows(report, spec.modules, depth)
            render_report(report, out, rows)
    if failed:
        raise typer.Exit(1)


@command()
def expand(
    spec_path: SpecArg,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where to write it (default: stdout).")
    ] = None,
) -> None:
    """Write the spec flat: no blocks, every layer under its full name, sizes inferred."""
    from netspec.frontend.flat_spec import flat_spec_text

    write_text_output(flat_spec_text(load_spec(spec_path)), output)


def write_text_output(text: str, output: Path | None) -> None:
    """`text` to stdout (no output given) or into the file, saying where it went."""
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot write {output}: {exc.strerror or exc}") from None
    err.print(f"wrote {escape(str(output))}", highlight=False)


@command()
def schema(
    output: Annotated[
        str, typer.Option("--output", "-o", help="Where to write it; '-' for stdout.")
    ] = SCHEMA_PATH,
    check_only: Annotated[
        bool, typer.Option("--check", help="Fail if the file differs from the current schema.")
    ] = False,
) -> None:
    """Write the JSON Schema of the spec format (for editors and other tools)."""
    from netspec.frontend.json_schema import schema_text

    text = schema_text()
    if check_only:
        current = _source_text(Path(output))
        if current is None and not Path(output).exists():
            raise CommandError(
                f"{output} does not exist: run `netspec schema -o {output}` and commit it"
            )
        if current is None:
            raise CommandError(f"cannot read {output} as UTF-8 text")
        if current != text:
            raise CommandError(f"{output} is stale: run `netspec schema -o {output}` and commit it")
        err.print(f"{escape(output)} is up to date", highlight=False)
        return
    write_text_output(text, None if output == "-" else Path(output))


DeviceOpt = Annotated[
    str, typer.Option("--device", "-d", help="cpu, cuda or cuda:N (GPU N; needs CuPy and a GPU).")
]


@command(interrupted="before training started: nothing was saved")
def train(
    spec_path: SpecArg,
    device: DeviceOpt = "cpu",
    epochs: Annotated[
        int | None, typer.Option("--epochs", "-e", min=1, help="Epochs in all (spec's).")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", "-b", min=1, help="Samples per step.")
    ] = None,
    lr: Annotated[
        float | None, typer.Option("--lr", min=0.0, help="Learning rate of the optimizer.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", min=0, help="Seed, 0 or more (spec's).")
    ] = None,
    out_dir: Annotated[
        Path | None,
        # Escaped: rich markup would read the brackets as a style tag and drop them.
        typer.Option("--out", "-o", help=escape("Output folder [runs/<spec name>].")),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option("--resume", help="Continue from this checkpoint (in its folder)."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the run that --out already holds.")
    ] = False,
) -> None:
    """Train a spec's network on its data: progress, checkpoints, metrics.jsonl, a plot.

    Runs never overwrite each other: without --out a run gets runs/<name>/version_K (the
    next free K); an --out that holds a run needs --resume or --overwrite.
    """
    from netspec.cli.parallel import launched
    from netspec.cli.progress import interrupt_line, progress_for, show_training
    from netspec.training.run_folder import remove_if_empty
    from netspec.training.trainer import Trainer

    spec = load_spec(spec_path)
    with launched(out) as world:  # under mpirun/srun: data-parallel, rank 0 speaks
        writes = world is None or world.rank == 0
        folder, made = _run_folder(spec.name, out_dir, resume) if writes else (None, [])
        options = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed}
        progress = progress_for(err)
        trainer = Trainer(
            spec,
            device=device,
            out=folder,
            callbacks=[progress] if writes else [],
            overwrite=overwrite,
            world=world,
            **options,
        )
        try:  # a KeyboardInterrupt out of fit() came before the first batch: nothing saved
            with progress:
                result = trainer.fit(resume=resume)
        finally:
            for path in made:  # a run that failed before writing anything leaves no folders
                remove_if_empty(path)
    with signals_ignored():  # the run is over and saved: a signal could only cut this
        if result.interrupted:
            err.print(escape(interrupt_line(result)), highlight=False, soft_wrap=True)
            raise typer.Exit(143 if result.signal == "SIGTERM" else 130)  # as a shell says
        show_training(result, out)


def _run_folder(name: str, out_dir: Path | None, resume: Path | None) -> tuple[Path, list[Path]]:
    """The run's folder (--out; else the folder of the checkpoint --resume continues; else
    a new runs/<name>/version_K) and the folders made here for it, innermost first."""
    from netspec.training.run_folder import new_version_folder

    if out_dir is not None:
        if out_dir.exists() and not out_dir.is_dir():
            raise CommandError(f"--out {out_dir} is a file, not a folder")
        return out_dir, []
    if resume is not None:
        return resume.parent, []
    root = Path("runs") / name
    if root.exists() and not root.is_dir():
        raise CommandError(f"the output folder {root} is a file, not a folder")
    made = [p for p in (root, root.parent) if not p.exists()]
    folder = new_version_folder(root)
    return folder, [folder, *made]


@command("eval")
def eval_command(
    spec_path: SpecArg,
    weights: Annotated[
        Path,
        typer.Option("--weights", "-w", help="Checkpoint (.npz) or .safetensors to evaluate."),
    ],
    device: DeviceOpt = "cpu",
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", "-b", min=1, help="Samples per batch.")
    ] = None,
) -> None:
    """Loss, accuracy and confusion matrix of a checkpoint on the validation data."""
    from netspec.cli.progress import render_evaluation
    from netspec.training.trainer import evaluate

    spec = load_spec(spec_path)
    result = evaluate(spec, weights, device=device, batch_size=batch_size)
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    render_evaluation(result, spec.name, weights, out)


@command("predict")
def predict_command(
    spec_path: SpecArg,
    weights: Annotated[
        Path,
        typer.Option("--weights", "-w", help="Checkpoint (.npz) or .safetensors to use."),
    ],
    data: Annotated[Path, typer.Option("--data", help="The inputs: an .npz file.")],
    x_key: Annotated[str, typer.Option("--x-key", help="The inputs' array in it.")] = "x",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write them to a .npz or .csv file.")
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", "-b", min=1, help="Samples per batch.")
    ] = 256,
    device: DeviceOpt = "cpu",
) -> None:
    """The network's eval-mode outputs on new inputs; for classifiers, probabilities and labels."""
    from netspec.cli.predict_output import check_output_path, deliver, prediction_progress
    from netspec.training.predict import predict, read_inputs

    if output is not None:
        check_output_path(output)
    spec = load_spec(spec_path)
    x = read_inputs(data, x_key)
    with prediction_progress(err) as on_batch:
        options = dict(batch_size=batch_size, device=device, on_batch=on_batch)
        prediction = predict(spec, weights, x, source=f"npz:{data}", **options)
    deliver(prediction, output, out, err)


@command("bench")
def bench_command(
    spec_path: SpecArg,
    device: DeviceOpt = "cpu",
    batch_size: Annotated[
        int, typer.Option("--batch-size", "-b", min=1, help="Samples per step.")
    ] = 64,
    repeats: Annotated[int, typer.Option("--repeats", "-r", min=1, help="Timed steps.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Time training steps and each layer's forward and backward (where time goes)."""
    from netspec.cli.render import render_bench
    from netspec.training.bench import bench

    spec = load_spec(spec_path)
    result = bench(spec, device=device, batch_size=batch_size, repeats=repeats)
    if as_json:
        out.print_json(json.dumps(result.to_dict()))
    else:
        render_bench(result, out)


@command()
def draw(
    spec_path: SpecArg,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The picture: FILE.svg, FILE.png or FILE.dot.")
    ],
) -> None:
    """Draw the graph: layers with their types and shapes, blocks as clusters (Graphviz)."""
    if output.suffix.lower() not in (".dot", ".svg", ".png"):
        raise typer.BadParameter(
            f"{output.name} must end in .dot, .svg or .png", param_hint="'--output'"
        )
    from netspec.export.draw import draw as draw_graph

    written = draw_graph(load_spec(spec_path), output)
    err.print(f"wrote {escape(str(written))}", highlight=False)


class ExportFormat(str, Enum):
    onnx = "onnx"
    safetensors = "safetensors"
    torch = "torch"


@command("export")
def export_command(
    spec_path: SpecArg,
    fmt: Annotated[
        ExportFormat, typer.Option("--format", "-f", help="onnx, safetensors or torch (a .py).")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The file: .onnx, .safetensors or .py.")
    ],
    weights: Annotated[
        Path | None,
        typer.Option(
            "--weights",
            "-w",
            help="Checkpoint (.npz) or .safetensors (torch: optional, saved beside the .py).",
        ),
    ] = None,
) -> None:
    """Write the network for other tools: ONNX, safetensors weights, or PyTorch code."""
    from netspec.export.formats import NEEDS_WEIGHTS, SUFFIXES

    suffix = SUFFIXES[fmt.value]
    if output.suffix.lower() != suffix:
        raise typer.BadParameter(
            f"{output.name} must end in {suffix} for --format {fmt.value}",
            param_hint="'--output'",
        )
    if weights is None and fmt.value in NEEDS_WEIGHTS:
        raise typer.BadParameter(
            f"--format {fmt.value} needs --weights W (a checkpoint or .safetensors)",
            param_hint="'--weights'",
        )
    from netspec.export.formats import export_model
    from netspec.training.weights import description_warning, read_weights

    spec = load_spec(spec_path)
    state = None
    if weights is not None:
        state, meta = read_weights(weights, spec)
        warning = description_warning(meta, spec, weights)
        if warning:
            err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    for path in export_model(spec, fmt.value, output, state):
        err.print(f"wrote {escape(str(path))}", highlight=False, soft_wrap=True)


def main() -> None:
    """Console-script entry point: what escapes a command (typer's own work around it) goes
    through the same `errors_exit`, so it too is one line, never a traceback."""
    atexit.register(ignore_signals)  # a signal while exiting would only make it a kill
    try:
        with errors_exit(interrupted=""):
            app()
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)


if __name__ == "__main__":
    main()
