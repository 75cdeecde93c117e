"""The formulas of netspec.ops.fused, each twice: the NumPy twin (the CPU path itself) and
the CUDA body of its fused kernel, written side by side so that they are read together.

A twin updates its in-place arrays exactly as the code it replaced did, pass by pass; the
body does the same operations per element in the same order (see fused.py for why they
round alike). `real` is the compute type of a body; `i` the element's index (C order).
"""

from __future__ import annotations

from typing import Any

from netspec.ops.backend import array_module

# The per-channel index of element i, C = the vector's size: channels run `plane` elements
# at a time, (N, C*plane) in NCHW order and plane 1 in channels-last order.
_CHANNEL = "const ptrdiff_t c = (i / plane) % {vector}.size();\n"


def _along_rows(v: Any, plane: int, row: int) -> Any:
    """A per-channel vector as _CHANNEL reads it along a row of `row` elements (each row
    starting at channel 0): each value `plane` times, that run tiled to fill the row."""
    xp = array_module(v)
    run = xp.repeat(v, plane) if plane > 1 else v
    return xp.tile(run, row // run.size) if row > run.size else run


def _lerp(start: Any, end: Any, weight: Any, rest: Any, near_start: bool) -> None:
    """start.lerp_(end, weight) with ATen's two formulas: near_start = |weight| < 0.5,
    rest = 1 - weight (both fixed by the host, so the choice is the same on each side)."""
    if near_start:
        start += weight * (end - start)
    else:
        start[...] = end - (end - start) * rest


def _lerp_body(start: str, end: str) -> str:
    return (
        f"{start} = near_start ? {start} + weight * ({end} - {start}) "
        f": {end} - ({end} - {start}) * rest;\n"
    )


_GRADIENT_BODY = (  # maximize and L2 weight decay, as every optimizer starts
    "real g = maximize ? -grad : grad;\nif (decays) g = g + weight_decay * param;\n"
)


# -- SGD ------------------------------------------------------------------------------------
def sgd(
    param, grad, buffer=None, *, lr, momentum, keep, weight_decay, maximize, decays, first,
    nesterov,
):  # fmt: skip
    """torch.optim.SGD's single-tensor step; buffer None: no momentum. keep = 1 - dampening;
    first: the buffer starts at the gradient."""
    if maximize:
        grad = -grad
    if decays:
        grad = grad + weight_decay * param
    if buffer is not None:
        if first:
            buffer[...] = grad
        else:
            buffer *= momentum
            buffer += keep * grad
        grad = grad + momentum * buffer if nesterov else buffer
    param -= lr * grad


def sgd_body(present: frozenset[str]) -> str:
    body = _GRADIENT_BODY
    if "buffer" in present:
        body += (
            "buffer = first ? g : buffer * momentum + keep * g;\n"
            "g = nesterov ? g + momentum * buffer : buffer;\n"
        )
    return body + "param = param - lr * g;\n"


# -- Adam, AdamW ----------------------------------------------------------------------------
def adam(
    param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq=None, *, weight_decay, decay, weight,
    rest, near_start, beta2, rest2, neg_step_size, bias_correction2_sqrt, eps, maximize,
    decays, decoupled,
):  # fmt: skip
    """torch.optim.Adam's single-tensor step; max_exp_avg_sq given: AMSGrad. decay =
    1 - lr * weight_decay (decoupled), weight = 1 - beta1, rest2 = 1 - beta2."""
    xp = array_module(param)
    if maximize:
        grad = -grad
    if decays:
        if decoupled:
            param *= decay
        else:
            grad = grad + weight_decay * param
    _lerp(exp_avg, grad, weight, rest, near_start)
    exp_avg_sq *= beta2
    exp_avg_sq += rest2 * grad * grad
    second_moment = exp_avg_sq
    if max_exp_avg_sq is not None:
        xp.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        second_moment = max_exp_avg_sq
    denom = xp.sqrt(second_moment)
    denom /= bias_correction2_sqrt
    denom += eps
    param += (neg_step_size * exp_avg) / denom


def adam_body(present: frozenset[str]) -> str:
    body = (
        "real g = maximize ? -grad : grad;\n"
        "if (decays) { if (decoupled) param = param * decay; "
        "else g = g + weight_decay * param; }\n"
        + _lerp_body("exp_avg", "g")
        + "exp_avg_sq = exp_avg_sq * beta2 + rest2 * g * g;\n"
        "real second = exp_avg_sq;\n"
    )
    if "max_exp_avg_sq" in present:  # NumPy's maximum: a NaN on either side wins
        body += (
            "const real m = max_exp_avg_sq;\n"
            "max_exp_avg_sq = (m != m || m > second) ? m : second;\n"
            "second = max_exp_avg_sq;\n"
        )
    return body + (
        "const real denom = sqrt(second) / bias_correction2_sqrt + eps;\n"
        "param = param + (neg_step_size * exp_avg) / denom;\n"
    )


# -- RMSprop --------------------------------------------------------------------------------
def rmsprop(
    param, grad, square_avg, grad_avg=None, momentum_buffer=None, *, lr, neg_lr, alpha,
    weight, rest, near_start, eps, momentum, weight_decay, maximize, decays,
):  # fmt: skip
    """torch.optim.RMSprop's single-tensor step; grad_avg given: centered; momentum_buffer
    given: with momentum. weight = 1 - alpha (the lerp's), rest = 1 - weight."""
    xp = array_module(param)
    if maximize:
        grad = -grad
    if decays:
        grad = grad + weight_decay * param
    square_avg *= alpha
    square_avg += weight * grad * grad
    if grad_avg is not None:  # the running mean's square out: an estimate of the variance
        _lerp(grad_avg, grad, weight, rest, near_start)
        avg = xp.sqrt(square_avg - grad_avg * grad_avg)
    else:
        avg = xp.sqrt(square_avg)
    avg += eps  # after the square root, as torch (TensorFlow adds it before)
    if momentum_buffer is not None:
        momentum_buffer *= momentum
        momentum_buffer += grad / avg
        param -= lr * momentum_buffer
    else:
        param += (neg_lr * grad) / avg


def rmsprop_body(present: frozenset[str]) -> str:
    body = _GRADIENT_BODY + "square_avg = square_avg * alpha + weight * g * g;\n"
    if "grad_avg" in present:
        body += _lerp_body("grad_avg", "g")
        body += "real avg = sqrt(square_avg - grad_avg * grad_avg);\n"
    else:
        body += "real avg = sqrt(square_avg);\n"
    body += "avg = avg + eps;\n"
    if "momentum_buffer" in present:
        return body + (
            "momentum_buffer = momentum_buffer * momentum + g / avg;\n"
            "param = param - lr * momentum_buffer;\n"
        )
    return body + "param = param + (neg_lr * g) / avg;\n"


# -- BatchNorm ------------------------------------------------------------------------------
def channel_affine(x, scale, out, shift=None, *, plane):
    """out = x * scale[c] (+ shift[c]) over 2-D arrays; out may be x itself."""
    row = x.shape[-1]
    array_module(x).multiply(x, _along_rows(scale, plane, row), out=out)
    if shift is not None:
        out += _along_rows(shift, plane, row)
    return out


def channel_affine_body(present: frozenset[str]) -> str:
    shift = " + shift[c]" if "shift" in present else ""
    return _CHANNEL.format(vector="scale") + f"out = x * scale[c]{shift};\n"


def norm_backward(dx, g, k, a, m, *, plane):
    """BatchNorm's input gradient from the centred input dx (in place), per channel:
    dx = ((dx * k + g) * a) - m, with k = -sum(g * xhat) * inv_std / n, a = weight * inv_std
    and m = a * sum(g) / n."""
    row = dx.shape[-1]
    dx *= _along_rows(k, plane, row)
    dx += g
    dx *= _along_rows(a, plane, row)
    dx -= _along_rows(m, plane, row)
    return dx


def norm_backward_body(present: frozenset[str]) -> str:
    return _CHANNEL.format(vector="k") + "dx = (dx * k[c] + g) * a[c] - m[c];\n"


# -- Dropout, ReLU --------------------------------------------------------------------------
def dropout_mask(mask, *, keep, scale, scaled):
    """Uniform draws on [0, 1) become the scaled mask in place: scale where u < keep, else 0
    (scaled False: 1, for p = 1 where keep is 0 and nothing is kept)."""
    array_module(mask).less(mask, keep, out=mask)
    if scaled:
        mask *= scale
    return mask


def dropout_body(present: frozenset[str]) -> str:
    return "mask = mask < keep ? (scaled ? scale : (real)1) : (real)0;\n"


def relu_grad(g, x, out):
    """ReLU's input gradient g * (x > 0): a product, so that an inf or NaN g gives NaN where
    x <= 0, as in PyTorch."""
    return array_module(g).multiply(g, x > 0, out=out)


def relu_grad_body(present: frozenset[str]) -> str:
    return "out = g * (x > 0 ? (real)1 : (real)0);\n"
