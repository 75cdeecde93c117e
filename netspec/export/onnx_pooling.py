"""ONNX nodes for MaxPool2d, AvgPool2d and the adaptive pools, with PyTorch's numbers.

Where ONNX and PyTorch part ways, the export does not lean on the runtime:
- ceil_mode: onnx's shape inference and the runtimes disagree on the last window, so the
  export never sets ONNX's ceil_mode. It pads the bottom and right by what the last window
  PyTorch keeps reaches past the padded input, and pools in floor mode. For MaxPool that
  pad is an explicit −inf Pad (onnxruntime refuses pool pads as large as the kernel).
- MaxPool's Indices count over the whole (N, C, H, W) tensor; PyTorch's are per (n, c)
  plane, h·W + w of the unpadded input. The export takes them modulo the plane (and maps
  rows of a padded plane back when the extra pad widened it).
- AvgPool2d's divisor (divisor_override, count_include_pad at ceil_mode's last window) is
  a constant of the shapes: the export divides a floor-mode sum by PyTorch's divisor,
  computed here from PyTorch's formula, not taken from netspec's kernel.
- Adaptive pools over sizes that do not divide: AdaptiveAvgPool2d is two MatMuls with
  constant averaging matrices (bins [floor(i·In/Out), ceil((i+1)·In/Out))); AdaptiveMax-
  Pool2d slices each bin, columns first, then rows (ReduceMax, ArgMax for indices), which
  keeps PyTorch's first-maximum-in-row-major-order tie rule.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from netspec.export.onnx_build import Call
from netspec.layers import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d
from netspec.types import pair


def _windows(layer, dilation=1) -> tuple[tuple[int, int], ...]:
    """(kernel, stride, padding, dilation) pairs; stride None means the kernel."""
    kernel = pair(layer.kernel_size)
    stride = kernel if layer.stride is None else pair(layer.stride)
    return kernel, stride, pair(layer.padding), pair(dilation)


def _ceil_extra(size: int, out: int, k: int, s: int, p: int, d: int) -> int:
    """How far the last window PyTorch keeps reaches past the padded input (0 in floor mode)."""
    return max(0, (out - 1) * s + d * (k - 1) + 1 - (size + 2 * p))


def _extras(c: Call, kernel, stride, padding, dilation) -> tuple[int, int]:
    return tuple(  # type: ignore[return-value]
        _ceil_extra(n, o, k, s, p, d)
        for n, o, k, s, p, d in zip(
            c.spatial, c.out_shape[2:], kernel, stride, padding, dilation, strict=True
        )
    )


# -- MaxPool2d --------------------------------------------------------------------------------
def max_pool(c: Call) -> None:
    kernel, stride, padding, dilation = _windows(c.layer, c.layer.dilation)
    _refuse_windows_of_padding_only(c, kernel, stride, padding, dilation)
    extra = _extras(c, kernel, stride, padding, dilation)
    _max_pool(c, c.x, kernel, stride, padding, dilation, extra)


def _max_pool(c: Call, x: str, kernel, stride, padding, dilation, extra=(0, 0)) -> None:
    s = c.scope
    if any(extra):
        x = s.pad(x, (0, extra[0], 0, extra[1]), "constant", value=-np.inf)
    raw = s.value("flat_indices") if c.indices else None
    s.op(
        "MaxPool",
        [x],
        outs=[c.name] + ([raw] if raw else []),
        kernel_shape=list(kernel),
        strides=list(stride),
        pads=[padding[0], padding[1], padding[0], padding[1]],
        dilations=list(dilation),
    )
    if raw:
        height, width = c.spatial
        _plane_indices(c, raw, (height + extra[0], width + extra[1]), width)


def _plane_indices(c: Call, raw: str, padded: tuple[int, int], width: int) -> None:
    """ONNX's index into the whole tensor -> PyTorch's h·W + w in the unpadded plane."""
    s = c.scope
    plane = s.op("Mod", [raw, s.const("plane", padded[0] * padded[1], np.int64)])
    if padded[1] == width:
        s.op("Identity", [plane], c.indices)
        return
    padded_width = s.const("padded_width", padded[1], np.int64)
    row = s.op("Div", [plane, padded_width])
    column = s.op("Mod", [plane, padded_width])
    row_start = s.op("Mul", [row, s.const("width", width, np.int64)])
    s.op("Add", [row_start, column], c.indices)


def _refuse_windows_of_padding_only(c: Call, kernel, stride, padding, dilation) -> None:
    """A dilated window can miss the input altogether: PyTorch gives −inf there and an
    index outside the plane, onnxruntime −FLT_MAX. Refused rather than exported wrong."""
    for size, out, k, s, p, d in zip(
        c.spatial, c.out_shape[2:], kernel, stride, padding, dilation, strict=True
    ):
        taps = np.arange(out)[:, None] * s - p + np.arange(k)[None, :] * d
        if not ((taps >= 0) & (taps < size)).any(axis=1).all():
            raise c.refuse(
                "a window lies entirely in the padding (PyTorch returns -inf there, ONNX "
                "runtimes the lowest float)"
            )


# -- AvgPool2d --------------------------------------------------------------------------------
def avg_pool(c: Call) -> None:
    layer: AvgPool2d = c.layer
    kernel, stride, padding, _ = _windows(layer)
    extra = _extras(c, kernel, stride, padding, (1, 1))
    s = c.scope
    pads = [padding[0], padding[1], padding[0], padding[1]]
    if not any(extra) and layer.divisor_override is None:  # ONNX's own divisor is PyTorch's
        s.op(
            "AveragePool",
            [c.x],
            c.name,
            kernel_shape=list(kernel),
            strides=list(stride),
            pads=pads,
            count_include_pad=int(layer.count_include_pad),
        )
        return
    (ph, pw), (eh, ew) = padding, extra
    x = s.pad(c.x, (ph, ph + eh, pw, pw + ew), "constant") if ph or pw or eh or ew else c.x
    mean = s.op("AveragePool", [x], kernel_shape=list(kernel), strides=list(stride))
    divisor = _avg_divisor(c, kernel, stride, padding)
    rescale = (kernel[0] * kernel[1]) / divisor  # mean · k_h·k_w = the window's sum
    s.op("Mul", [mean, s.const("rescale", rescale)], c.name)


def _avg_divisor(c: Call, kernel, stride, padding) -> np.ndarray:
    """PyTorch's AvgPool2d divisor per output position, (1, 1, Ho, Wo)."""
    override = c.layer.divisor_override
    out = c.out_shape[2:]
    if override is not None:
        return np.full((1, 1, *out), float(override))
    per_axis = []
    for size, o, k, s, p in zip(c.spatial, out, kernel, stride, padding, strict=True):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, size + p)  # a window never counts past the padding
        if c.layer.count_include_pad:
            per_axis.append(end - start)
        else:
            per_axis.append(np.minimum(end, size) - np.maximum(start, 0))
    return np.outer(*per_axis).astype(np.float64)[None, None]


# -- adaptive pools ---------------------------------------------------------------------------
def _bins(size: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive bins: [floor(i·In/Out), ceil((i+1)·In/Out))."""
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


def _adaptive_out(c: Call) -> tuple[int, int]:
    out = tuple(c.out_shape[2:4])
    if min(out) < 1:
        raise c.refuse(f"an output size of 0 gives an empty tensor (output_size {out})")
    return out  # type: ignore[return-value]


def adaptive_avg_pool(c: Call) -> None:
    (height, width), (oh, ow) = c.spatial, _adaptive_out(c)
    s = c.scope
    if (oh, ow) == (1, 1):
        s.op("GlobalAveragePool", [c.x], c.name)
    elif height % oh == 0 and width % ow == 0:  # equal bins: a plain pool
        kernel = [height // oh, width // ow]
        s.op("AveragePool", [c.x], c.name, kernel_shape=kernel, strides=kernel)
    else:  # y = A_h · x · A_wᵀ, A[i, start:end] = 1 / (end − start)
        columns = s.op("MatMul", [c.x, s.const("mean_w", _mean_matrix(width, ow).T)])
        s.op("MatMul", [s.const("mean_h", _mean_matrix(height, oh)), columns], c.name)


def _mean_matrix(size: int, out: int) -> np.ndarray:
    matrix = np.zeros((out, size))
    for i, (start, end) in enumerate(_bins(size, out)):
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


def adaptive_max_pool(c: Call) -> None:
    (height, width), (oh, ow) = c.spatial, _adaptive_out(c)
    if (oh, ow) == (1, 1) and not c.indices:
        c.scope.op("GlobalMaxPool", [c.x], c.name)
    elif height % oh == 0 and width % ow == 0:  # equal bins: MaxPool2d's windows
        kernel = (height // oh, width // ow)
        _max_pool(c, c.x, kernel, kernel, (0, 0), (1, 1))
    else:
        _binned_max(c, (height, width), (oh, ow))


def _binned_max(c: Call, size: tuple[int, int], out: tuple[int, int]) -> None:
    """Max over each column bin, then over each row bin of those. For indices, the row's
    ArgMax says which row won and GatherElements which column won in that row."""
    s = c.scope
    values, columns = _axis_max(c, c.x, axis=3, size=size[1], out=out[1])
    values, rows = _axis_max(c, values, axis=2, size=size[0], out=out[0], final=True)
    if not c.indices:
        return
    if out[0] == size[0]:  # rows kept: row i is row i, its winning column as found
        rows, column = s.const("rows", np.arange(size[0]).reshape(1, 1, -1, 1), np.int64), columns
    elif out[1] == size[1]:  # columns kept: column j is column j
        column = s.const("columns", np.arange(size[1]).reshape(1, 1, 1, -1), np.int64)
    else:
        column = s.op("GatherElements", [columns, rows], axis=2)
    row_start = s.op("Mul", [rows, s.const("width", size[1], np.int64)])
    s.op("Add", [row_start, column], c.indices)


def _axis_max(c: Call, x: str, axis: int, size: int, out: int, final: bool = False):
    """(max over each bin along `axis`, where along `axis` it was: None when not asked for,
    or when the axis keeps its size (output_size None: bins of one, nothing to reduce))."""
    s = c.scope
    if out == size:
        return (s.op("Identity", [x], c.name) if final else x), None
    maxima, positions = [], []
    for start, end in _bins(size, out):
        window = s.slice(x, axis, start, end)
        maxima.append(s.reduce("ReduceMax", window, (axis,), keepdims=True))
        if c.indices:  # ArgMax's first maximum, as PyTorch's ties
            local = s.op("ArgMax", [window], axis=axis, keepdims=1, select_last_index=0)
            positions.append(s.op("Add", [local, s.const("start", start, np.int64)]))
    values = s.op("Concat", maxima, c.name if final else None, axis=axis)
    where = s.op("Concat", positions, axis=axis) if c.indices else None
    return values, where


POOL_CONVERTERS: dict[type, Callable[[Call], None]] = {
    MaxPool2d: max_pool,
    AvgPool2d: avg_pool,
    AdaptiveMaxPool2d: adaptive_max_pool,
    AdaptiveAvgPool2d: adaptive_avg_pool,
}
