"""Predictions: a trained network's eval-mode outputs on new inputs, in batches.

    x = read_inputs("new.npz", "x")
    prediction = predict(spec, "runs/digits/version_0/best.npz", x)  # or a .safetensors
    prediction.output, prediction.probabilities, prediction.label

Inputs are checked as training inputs are (data/checks.py: per-sample shape against the
spec's input, numbers, no NaN or infinity), so a file that trains also predicts. For a
spec whose loss takes class targets (CrossEntropyLoss) the output's class axis (1) also
gives probabilities (softmax) and labels (argmax). A network with several outputs is
predicted by its first, the one the loss reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from netspec.data.base import DataError
from netspec.data.checks import conform_inputs
from netspec.data.npz_reader import NpzDamage, NpzReader
from netspec.frontend.diagnostics import did_you_mean
from netspec.memory import available_memory, format_bytes
from netspec.network import compile as compile_network
from netspec.ops.backend import get_xp, to_numpy
from netspec.training.evaluation import first_output
from netspec.training.weights import description_warning, read_weights

if TYPE_CHECKING:
    from netspec.frontend.spec import Spec
    from netspec.network import Network

DEFAULT_BATCH_SIZE = 256
BatchDone = Callable[[int, int], None]  # (batches done, batches in all)


@dataclass
class Prediction:
    """What `predict` computed, all NumPy on the host."""

    output: np.ndarray  # (n, *output shape): the network's first output
    probabilities: np.ndarray | None = None  # softmax over axis 1, class targets only
    label: np.ndarray | None = None  # (n, ...) int64 argmax over axis 1, class targets only
    warnings: list[str] | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        """The named arrays a prediction file holds: `output`, and for classification
        `probabilities` and `label`."""
        named = {"output": self.output}
        if self.probabilities is not None and self.label is not None:
            named.update(probabilities=self.probabilities, label=self.label)
        return named


def read_inputs(path: str | Path, x_key: str = "x") -> np.ndarray:
    """The `x_key` array of an .npz archive, read without pickle and bounded (its declared
    size is checked against the memory available before any data is read)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"npz file not found: {path}")
    try:
        with NpzReader(path) as archive:
            if x_key not in archive.members:
                raise DataError(
                    f"{path} has no array {x_key!r}; it has: "
                    + (", ".join(repr(k) for k in archive.members) or "none"),
                    hint=did_you_mean(x_key, archive.members),
                )
            header = archive.header(x_key)
            available = available_memory()
            if available is not None and header.nbytes > available:
                raise DataError(
                    f"npz file {path} declares {format_bytes(header.nbytes)} of {x_key!r}, "
                    f"more than the {format_bytes(available)} of memory available"
                )
            return archive.read(header)
    except (OSError, NpzDamage) as error:
        raise DataError(f"cannot read npz file {path}: {error}") from None


def load_weights(spec: Spec, weights: str | Path, device: str) -> tuple[Network, str | None]:
    """The spec's network on `device` with the weights of a netspec checkpoint or a
    .safetensors file, in eval mode, and a warning when a checkpoint comes from another
    network description."""
    state, meta = read_weights(weights, spec)  # names and shapes checked before any data
    net = compile_network(spec, device=device)
    warning = description_warning(meta, spec, weights)
    net.load_state_dict(state)
    return net.eval(), warning


def predict(
    spec: Spec,
    weights: str | Path,
    x: np.ndarray,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str = "cpu",
    source: str = "inputs",
    on_batch: BatchDone | None = None,
) -> Prediction:
    """The network's eval-mode outputs on `x`, `batch_size` samples at a time.

    `x` is checked first (`source` names it in messages); `on_batch` hears of each batch
    done, for a progress bar.
    """
    if batch_size < 1:
        raise DataError(f"the batch size must be at least 1, not {batch_size}")
    xp = get_xp(device)  # a missing CuPy is the first thing to say
    x = conform_inputs(x, tuple(spec.input.shape), np.dtype(spec.input.dtype), source)
    net, warning = load_weights(spec, weights, device)
    batches = -(-len(x) // batch_size)
    outputs = []
    for index in range(batches):
        batch = x[index * batch_size : (index + 1) * batch_size]
        outputs.append(to_numpy(first_output(net(xp.asarray(batch)))))
        if on_batch is not None:
            on_batch(index + 1, batches)
    output = np.concatenate(outputs)
    prediction = Prediction(output, warnings=[warning] if warning else [])
    if spec.loss is not None and spec.loss.targets == "classes":
        prediction.probabilities = softmax(output, axis=1)
        prediction.label = output.argmax(axis=1).astype(np.int64)
    return prediction


def softmax(logits: np.ndarray, axis: int) -> np.ndarray:
    """exp(z) / sum(exp(z)) along `axis`, with the maximum taken out first so that no
    exponential overflows."""
    shifted = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)
