"""Evaluation: loss, accuracy and confusion matrix of a network over a data split.

    evaluation = evaluate(spec, "runs/digits/best.npz")

Classification means CrossEntropyLoss: accuracy compares the argmax over dim 1 with class
indices (ignore_index skipped) or with the argmax of class-probability targets. The loss
over a split is the mean of the batch losses weighted by batch size (a loss with reduction
'none' is averaged). The trainer uses the same functions for its validation and its
running training metrics.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from netspec.data import iterate_batches
from netspec.frontend.spec import TrainSpec
from netspec.ops.backend import get_xp, to_numpy
from netspec.training.events import EvalResult
from netspec.training.setup import RunSetup, meta_int, prepare
from netspec.training.weights import description_warning, read_weights

if TYPE_CHECKING:
    from netspec.frontend.spec import Spec

_UNUSED_RNG = np.random.default_rng(0)  # iterate_batches wants one even without shuffling


def evaluate(
    spec: Spec, weights: str | Path, *, device: str = "cpu", batch_size: int | None = None
) -> EvalResult:
    """Loss, accuracy and confusion matrix of a checkpoint (or .safetensors weights) on
    the validation split.

    The split is the training run's: the seed comes from the checkpoint (the spec's for
    safetensors, which record no run). Without a validation split the training data is
    used (`split` says which). The batch size defaults to the run's, so the loss matches
    the logged val_loss to the last digit.
    """
    xp = get_xp(device)  # a missing CuPy is the first thing to say
    state, recorded_meta = read_weights(weights, spec)  # names and shapes checked first
    meta, train = recorded_meta or {}, spec.train or TrainSpec()
    setup = prepare(spec, device, meta_int(meta, "seed", train.seed), xp)
    warning = description_warning(recorded_meta, spec, weights)
    setup.net.load_state_dict(state)
    epoch = None if recorded_meta is None else int(meta.get("epoch", 0))
    data = setup.data
    if data.has_validation:
        x, y, split = data.x_val, data.y_val, "validation"
    else:
        x, y, split = data.x_train, data.y_train, "training"
    size = batch_size or meta_int(meta, "batch_size", train.batch_size)
    loss, correct, counted, matrix = evaluate_arrays(setup, x, y, size, setup.classification)
    return EvalResult(
        loss=loss,
        samples=len(x),
        split=split,
        accuracy=correct / counted if correct is not None and counted else None,
        confusion=matrix,
        checkpoint_epoch=epoch,
        recorded=_recorded_metrics(meta, epoch),
        warnings=[warning] if warning else [],
    )


def _recorded_metrics(meta: dict, epoch: int | None) -> dict | None:
    """The metrics the run logged for the checkpoint's epoch (None mid-epoch or unlogged)."""
    if meta_int(meta, "batch", 0) != 0 or not isinstance(meta.get("history"), list):
        return None
    matches = [m for m in meta["history"] if isinstance(m, dict)]
    return next((m for m in matches if m.get("epoch") == epoch), None)


def evaluate_arrays(
    setup: RunSetup,
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    confusion: bool = False,
    parallel: Any = None,  # a data_parallel.DataParallel (which imports this module)
) -> tuple[float, int | None, int, np.ndarray | None]:
    """Mean loss, correct count, counted elements and (optionally) the confusion matrix of
    the network in eval mode over (x, y), in batches. With `parallel`, this process takes
    its rows of each batch and the sums are those of every process (no confusion matrix)."""
    net, xp = setup.net, setup.xp
    net.eval()
    loss_sum, correct, counted = 0.0, 0, 0
    classes = setup.data.num_classes or 0
    matrix = np.zeros((classes, classes), dtype=np.int64) if confusion else None
    for xb, yb in iterate_batches(x, y, batch_size, shuffle=False, rng=_UNUSED_RNG):
        if parallel is None:
            inputs, target = xp.asarray(xb), xp.asarray(yb)
        else:
            inputs, target = parallel.own_rows(xb, yb)
        out = first_output(net(inputs))
        value = setup.loss(out, target)
        share = loss_value(value) if parallel is None else parallel.share(value)
        loss_sum += share * len(xb)
        if setup.classification:
            c, n = accuracy_counts(out, target, setup)
            correct, counted = correct + c, counted + n
            if matrix is not None:
                matrix += _confusion(out, target, setup, classes)
    if parallel is not None:
        loss_sum, correct, counted = parallel.sum_counts(loss_sum, correct, counted)
    mean = loss_sum / len(x) if len(x) else math.nan
    return mean, (correct if setup.classification else None), counted, matrix


def first_output(y: Any) -> Any:
    """The output the loss reads: the first of a network with several."""
    return y[0] if isinstance(y, tuple) else y


def output_grads(out: Any, grad: Any) -> Any:
    """The gradients backward takes for the network's output(s): `grad` for the first (the
    loss's), None for the others."""
    return (grad, *[None] * (len(out) - 1)) if isinstance(out, tuple) else grad


def loss_value(value: Any) -> float:
    """The loss as one float: the value itself, or the mean of a reduction='none' loss."""
    return float(value) if value.ndim == 0 else float(value.mean())


def accuracy_counts(y: Any, target: Any, setup: RunSetup) -> tuple[int, int]:
    """Correct predictions and counted elements of one batch (ignored targets left out)."""
    predicted, true, valid = _hits(y, target, setup)
    right = predicted == true
    if valid is None:
        return int(right.sum()), int(right.size)
    return int((right & valid).sum()), int(valid.sum())


def _hits(y: Any, target: Any, setup: RunSetup) -> tuple[Any, Any, Any]:
    """Predictions, true classes and a mask of the elements that count, all (N, d1, ...)."""
    predicted = y.argmax(axis=1)
    if target.dtype.kind == "f":  # class probabilities
        return predicted, target.argmax(axis=1), None
    valid = None if setup.ignore_index is None else target != setup.ignore_index
    return predicted, target, valid


def _confusion(y: Any, target: Any, setup: RunSetup, classes: int) -> np.ndarray:
    predicted, true, valid = _hits(y, target, setup)
    predicted, true = to_numpy(predicted).ravel(), to_numpy(true).ravel()
    if valid is not None:
        keep = to_numpy(valid).ravel()
        predicted, true = predicted[keep], true[keep]
    flat = np.bincount(true * classes + predicted, minlength=classes * classes)
    return flat.reshape(classes, classes)
