"""The array shapes Conv2d's GEMMs want: weights and gradients regrouped per group, as rows
(channels-last) or channel-major, and the products written back as (N, O, H, W)."""

from __future__ import annotations

from typing import Any

from netspec.ops.backend import array_module
from netspec.ops.layout import to_layout


def grouped_weight(weight: Any, groups: int) -> Any:
    out_channels, per_group, kh, kw = weight.shape
    return weight.reshape(groups, out_channels // groups, per_group * kh * kw)  # (G, O/G, K)


def rows_weight(weight: Any, groups: int) -> Any:
    """(O, C/G, kh, kw) -> (G, kh*kw*C/G, O/G), the row order of im2col_rows."""
    out_channels, per_group, kh, kw = weight.shape
    grouped = weight.reshape(groups, out_channels // groups, per_group, kh, kw)
    return grouped.transpose(0, 3, 4, 2, 1).reshape(
        groups, kh * kw * per_group, out_channels // groups
    )


def channels_last_rows(g: Any) -> Any:
    """(N, O, h, w) -> (N*h*w, O): a view when g is channels-last already."""
    n, channels, height, width = g.shape
    return to_layout(g, True).transpose(0, 2, 3, 1).reshape(n * height * width, channels)


def grouped_rows(rows: Any, groups: int) -> Any:
    """(L, O) -> (G, L, O/G), a view."""
    length, channels = rows.shape
    return rows.reshape(length, groups, channels // groups).transpose(1, 0, 2)


def rows_product(col: Any, weight: Any, out: Any) -> None:
    """out (L, O) = (G, L, K/G) @ (G, K/G, O/G), each row holding every group's outputs."""
    if col.shape[0] == 1:
        array_module(col).matmul(col[0], weight[0], out=out)
    else:
        out.reshape(out.shape[0], col.shape[0], weight.shape[2])[...] = (col @ weight).transpose(
            1, 0, 2
        )


def to_batch_major(y: Any, n: int, size: tuple[int, int], bias: Any) -> Any:
    """(G, O/G, N*h*w) -> (N, O, h, w), adding the bias in the same pass."""
    xp, channels = array_module(y), y.shape[0] * y.shape[1]
    view = y.reshape(channels, n, *size).transpose(1, 0, 2, 3)  # (N, O, h, w), strided
    if bias is None:
        return xp.ascontiguousarray(view)
    out = xp.empty(view.shape, dtype=y.dtype)
    return xp.add(view, bias.reshape(1, channels, 1, 1), out=out)


def to_channel_major(g: Any, groups: int) -> Any:
    """(N, O, h, w) -> (G, O/G, N*h*w), one copy."""
    n, channels, height, width = g.shape
    g_cm = array_module(g).ascontiguousarray(
        g.reshape(n, channels, height * width).transpose(1, 0, 2)
    )
    return g_cm.reshape(groups, channels // groups, n * height * width)  # from (O, N, h*w)
