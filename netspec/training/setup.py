"""What a run works with: the device, data, network and loss of a spec, and the training
settings once command-line overrides and a resumed checkpoint have had their say.

Defaults for a spec without some sections: no `train:` trains with TrainSpec's defaults
(10 epochs, batches of 64, Adam at lr 1e-3, seed 0); no `loss:` or no `data:` is a
TrainingError (netspec cannot guess what to minimise or what to train on).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from netspec import memory  # its module: tests stand in for available_memory
from netspec.data import Dataset, load_dataset
from netspec.frontend.spec import TrainSpec
from netspec.frontend.training_memory import training_memory
from netspec.losses import compile_loss
from netspec.memory import format_bytes
from netspec.network import compile as compile_network
from netspec.ops.backend import free_memory
from netspec.training.checkpoint import Checkpoint, CheckpointError
from netspec.training.events import TrainingError

if TYPE_CHECKING:
    from netspec.frontend.spec import Spec
    from netspec.losses import CompiledLoss
    from netspec.network import Network


@dataclass
class RunSetup:
    """The compiled pieces a training or evaluation run needs."""

    net: Network
    loss: CompiledLoss
    data: Dataset
    classification: bool  # class targets (CrossEntropyLoss): accuracy and confusion measured
    ignore_index: int | None
    xp: ModuleType  # the device's array module: NumPy or CuPy


def prepare(spec: Spec, device: str, seed: int, xp: ModuleType) -> RunSetup:
    """Data, network and loss for a spec on a device its caller resolved once
    (`xp = get_xp(device)`: a missing CuPy is the first thing to say); every failure is a
    NetspecError. The spec's analysed graph gives the output shape: nothing is analysed
    again."""
    if spec.loss is None:
        raise TrainingError(
            f"spec '{spec.name}' has no `loss:` section, so there is nothing to minimise",
            hint="add e.g. `loss: CrossEntropyLoss` (classification) or `loss: MSELoss`",
        )
    if spec.data is None:
        raise TrainingError(
            f"spec '{spec.name}' has no `data:` section, so there is nothing to train on",
            hint="add e.g. `data: {source: digits}`, `{source: npz, path: data.npz}` "
            "or `{source: synthetic}`",
        )
    graph = spec.graph
    output_shape = graph.shapes[graph.outputs[0]]
    data = load_dataset(
        spec.data,
        input_shape=tuple(spec.input.shape),
        output_shape=output_shape,
        loss_type=spec.loss.type,
        seed=seed,
        spec_dir=spec.spec_dir,
        dtype=spec.input.dtype,
    )
    net = compile_network(spec, device=device, seed=seed)
    loss = compile_loss(spec.loss, device=device, dtype=net.dtype)
    classification = spec.loss.targets == "classes"
    ignore_index = getattr(spec.loss, "ignore_index", None)
    return RunSetup(net, loss, data, classification, ignore_index, xp)


def check_training_memory(spec: Spec, train: TrainSpec, device: str) -> None:
    """TrainingError, before anything is allocated, when training `spec` with these
    settings would need more memory than `device` has available (netspec/memory.py)."""
    estimate = training_memory(spec, spec.graph, train.batch_size, train.optimizer)
    # On a GPU the network is there and the data set on the host; on the CPU both are here.
    needs = (
        [(estimate.total, "cpu")]
        if device == "cpu"
        else [
            (estimate.on_device, device),
            (estimate.data, "cpu"),
        ]
    )
    for needed, where in needs:
        available = memory.available_memory() if where == "cpu" else free_memory(where)
        if available is not None and needed > available:
            raise TrainingError(
                f"training {spec.name} needs {estimate.describe()}, more than the "
                f"{format_bytes(available)} available on {where}",
                hint="use fewer samples"
                if estimate.data > needed / 2
                else "use fewer or smaller layers, or a smaller batch size",
            )


def train_settings(spec: Spec, overrides: dict, checkpoint: Checkpoint | None) -> TrainSpec:
    """The spec's `train:` section with the overrides (epochs, batch_size, lr, seed; None:
    not given) applied. A resumed run takes its seed and batch size from the checkpoint
    unless given; a given one that would change the run's data order is an error."""
    train = spec.train or TrainSpec()
    given = {k: v for k, v in overrides.items() if v is not None and k != "lr"}
    if checkpoint is not None:
        meta = checkpoint.meta
        for key in ("seed", "batch_size"):
            saved = meta_int(meta, key, getattr(train, key))
            changed = key in given and given[key] != saved
            if changed and (key == "seed" or meta_int(meta, "batch", 0)):
                raise _resume_conflict(key, saved, given[key])
            given.setdefault(key, saved)
    if overrides["lr"] is not None:
        given["optimizer"] = _with_lr(train.optimizer, overrides["lr"])
    return train.model_copy(update=given)


def meta_int(meta: dict, key: str, default: int) -> int:
    """An int entry of a checkpoint's meta (`default` when absent); CheckpointError if not."""
    value = meta.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise CheckpointError(f"checkpoint is damaged: meta entry '{key}' is {value!r}")
    return value


def _with_lr(optimizer: Any, lr: float) -> Any:
    try:
        return type(optimizer).model_validate({**optimizer.model_dump(), "lr": lr})
    except ValidationError as exc:
        raise TrainingError(f"learning rate {lr}: {exc.errors()[0]['msg']}") from None


def _resume_conflict(key: str, saved: int, given: int) -> TrainingError:
    flag = key.replace("_", " ")
    if key == "seed":
        reason = "another seed draws another validation split and shuffle order"
    else:
        reason = "the checkpoint stopped in the middle of an epoch of other batches"
    return TrainingError(
        f"cannot resume with {flag} {given}: the checkpoint was trained with {saved}, and {reason}",
        hint=f"resume with the checkpoint's {flag} ({saved}), or start a new run instead",
    )
