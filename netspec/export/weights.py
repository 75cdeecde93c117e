"""Weights out: the state dict as a `.safetensors` file under PyTorch's names.

    write_safetensors(state, "model.safetensors")
    # in PyTorch:
    model.load_state_dict(safetensors.torch.load_file("model.safetensors"), strict=True)

The names are netspec's state-dict names, which are the module paths of the torch model
with the same structure (`layer1.0.conv1.weight`, `3.running_var`, BatchNorm's
`num_batches_tracked` included), so PyTorch loads the file strictly. The `safetensors`
package (an extra) is imported only here, when a file is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from netspec.errors import NetspecError
from netspec.ops.backend import to_numpy
from netspec.training.atomic import write_atomically

INSTALL = "pip install 'netspec[export]'"


class ExportError(NetspecError):
    """A model that cannot be written in the format asked for (a missing package, a file
    not written, a network the format cannot express)."""


def write_safetensors(state: dict[str, Any], path: str | Path) -> Path:
    """Write `state` (name -> array) to `path` atomically, each tensor C-contiguous in its
    own dtype; returns the path."""
    try:
        from safetensors.numpy import save
    except ImportError:
        raise ExportError(
            f"writing .safetensors needs the safetensors package: {INSTALL}"
        ) from None
    path = Path(path)
    tensors = {name: _host(value) for name, value in state.items()}
    data = save(tensors, metadata={"format": "pt"})  # what safetensors.torch writes
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda file: file.write(data))
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def _host(value: Any) -> np.ndarray:
    """A C-contiguous NumPy array (0-d stays 0-d: np.ascontiguousarray would make it 1-d)."""
    array = np.asarray(to_numpy(value))
    return array if array.flags.c_contiguous else array.copy(order="C")
