"""Convolutions as matrix products (and depthwise ones as products of slices), while a pack's
program is traced.

Mapped over a stack of runs, a convolution with a kernel per run becomes a grouped
convolution, which XLA runs slowly on CPU (measured: 3.9 s an epoch of 15 MNIST-1D CNNs in a
rolled loop, 0.45 s this way); slices of the input and a batched matrix product map well. So
while the engine traces its program (`tracing`), Keras's convolution op works as shifted slices
of the input times the kernel as a `[window x in, out]` matrix (`conv_as_matmul`): the same
convolution, summed in another order. A depthwise convolution (Keras's `DepthwiseConv1D/2D`,
and the first half of `SeparableConv1D/2D`) is a grouped convolution already, and mapped over a
stack its groups multiply: measured on issue 33's residual block (Conv1D, BatchNorm,
DepthwiseConv1D), one epoch of a stack of 8 took 36 s against 0.38 s for one run alone. It is
traced instead as the sum, over window positions, of each shifted slice times that position's
`[in, multiplier]` kernel (`depthwise_as_product`), and a separable convolution as that
followed by the pointwise `conv_as_matmul`.

The hook on Keras's op is installed once and is inert outside a trace: whether a call is
inside one is a context variable, so the Keras engine training in another thread of the same
process (a Dask worker runs tasks in threads) gets Keras's own op.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import threading
from collections.abc import Iterator
from typing import Any

_TRACING = contextvars.ContextVar("mlreg_tracing_a_pack", default=False)
_INSTALL = threading.Lock()


@contextlib.contextmanager
def tracing() -> Iterator[None]:
    """Inside (in this thread only), Keras's convolutions are traced as matrix products."""
    _install()
    token = _TRACING.set(True)
    try:
        yield
    finally:
        _TRACING.reset(token)


def _install() -> None:
    from mlreg.keras_private import backend_ops, standardize_data_format

    backend = backend_ops()
    with _INSTALL:
        if getattr(backend.nn.conv, "_mlreg_hook", False):
            return
        conv, depthwise, separable = backend.nn.conv, backend.nn.depthwise_conv, backend.nn.separable_conv

        def ours(inputs: Any, data_format: Any, padding: str) -> bool:
            return _TRACING.get() and standardize_data_format(data_format) == "channels_last" and padding in (
                "valid", "same")

        def conv_hook(inputs: Any, kernel: Any, strides: Any = 1, padding: str = "valid", data_format: Any = None,
                      dilation_rate: Any = 1) -> Any:
            if not ours(inputs, data_format, padding) or kernel.shape[-2] != inputs.shape[-1]:
                return conv(inputs, kernel, strides, padding, data_format, dilation_rate)
            return conv_as_matmul(inputs, kernel, strides, padding, dilation_rate)

        def depthwise_hook(inputs: Any, kernel: Any, strides: Any = 1, padding: str = "valid",
                           data_format: Any = None, dilation_rate: Any = 1) -> Any:
            if not ours(inputs, data_format, padding):
                return depthwise(inputs, kernel, strides, padding, data_format, dilation_rate)
            return depthwise_as_product(inputs, kernel, strides, padding, dilation_rate)

        def separable_hook(inputs: Any, depthwise_kernel: Any, pointwise_kernel: Any, strides: Any = 1,
                           padding: str = "valid", data_format: Any = None, dilation_rate: Any = 1) -> Any:
            if not ours(inputs, data_format, padding):
                return separable(inputs, depthwise_kernel, pointwise_kernel, strides, padding, data_format,
                                 dilation_rate)
            middle = depthwise_as_product(inputs, depthwise_kernel, strides, padding, dilation_rate)
            return conv_as_matmul(middle, pointwise_kernel, 1, "valid", 1)

        conv_hook._mlreg_hook = True  # type: ignore[attr-defined]
        backend.nn.conv, backend.nn.depthwise_conv = conv_hook, depthwise_hook
        backend.nn.separable_conv = separable_hook


def conv_as_matmul(inputs: Any, kernel: Any, strides: Any, padding: str, dilation_rate: Any) -> Any:
    """A channels-last convolution (1-, 2- or 3-D, no groups) as a matrix product: each window
    position's slice of the (padded) input (`_windows`), side by side, times the kernel as a
    `[window x in, out]` matrix."""
    import keras

    columns = _windows(inputs, kernel, strides, padding, dilation_rate)
    patches = keras.ops.concatenate(columns, axis=-1) if len(columns) > 1 else columns[0]
    return keras.ops.matmul(patches, keras.ops.reshape(kernel, (-1, kernel.shape[-1])))


def depthwise_as_product(inputs: Any, kernel: Any, strides: Any, padding: str, dilation_rate: Any) -> Any:
    """A channels-last depthwise convolution (kernel `[window..., in, multiplier]`) as the sum,
    over window positions, of each shifted slice of the input times that position's kernel;
    output channel `c * multiplier + m`, as Keras orders them."""
    import keras

    ops = keras.ops
    kernel = ops.convert_to_tensor(kernel)
    columns = _windows(inputs, kernel, strides, padding, dilation_rate)
    taps = ops.reshape(kernel, (len(columns), *kernel.shape[-2:]))
    total = None
    for i, column in enumerate(columns):
        term = ops.expand_dims(column, -1) * taps[i]
        total = term if total is None else total + term
    return ops.reshape(total, (*total.shape[:-2], -1))


def _windows(inputs: Any, kernel: Any, strides: Any, padding: str, dilation_rate: Any) -> list:
    """The input's slice under each window position of a convolution (in the kernel's order),
    each of the output's size. Padding `same` pads as XLA and TensorFlow do (the extra one after)."""
    import keras

    ops = keras.ops
    kernel, inputs = ops.convert_to_tensor(kernel), ops.convert_to_tensor(inputs)
    window = tuple(kernel.shape[:-2])
    nd = len(window)
    strides = (strides,) * nd if isinstance(strides, int) else tuple(strides)
    dilation = (dilation_rate,) * nd if isinstance(dilation_rate, int) else tuple(dilation_rate)
    size = tuple(inputs.shape[1:-1])
    if padding == "same":
        out = tuple(-(-n // s) for n, s in zip(size, strides, strict=True))
        total = [max((o - 1) * s + (w - 1) * d + 1 - n, 0)
                 for o, s, w, d, n in zip(out, strides, window, dilation, size, strict=True)]
        inputs = ops.pad(inputs, [(0, 0), *((t // 2, t - t // 2) for t in total), (0, 0)])
    else:
        out = tuple((n - (w - 1) * d - 1) // s + 1 for n, w, d, s in zip(size, window, dilation, strides, strict=True))
    columns = []
    for offset in itertools.product(*(range(w) for w in window)):
        index = tuple(slice(o * d, o * d + (m - 1) * s + 1, s)
                      for o, d, m, s in zip(offset, dilation, out, strides, strict=True))
        columns.append(inputs[(slice(None), *index, slice(None))])
    return columns
