"""Convolutions as matrix products, while a pack's program is traced.

Mapped over a stack of runs, a convolution with a kernel per run becomes a grouped
convolution, which XLA runs slowly on CPU (measured: 3.9 s an epoch of 15 MNIST-1D CNNs in a
rolled loop, 0.45 s this way); slices of the input and a batched matrix product map well. So
while the engine traces its program (`tracing`), Keras's convolution op works as shifted slices
of the input times the kernel as a `[window x in, out]` matrix (`conv_as_matmul`): the same
convolution, summed in another order.

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
        original = backend.nn.conv

        def conv(inputs: Any, kernel: Any, strides: Any = 1, padding: str = "valid", data_format: Any = None,
                 dilation_rate: Any = 1) -> Any:
            if (not _TRACING.get() or standardize_data_format(data_format) != "channels_last"
                    or padding not in ("valid", "same") or kernel.shape[-2] != inputs.shape[-1]):
                return original(inputs, kernel, strides, padding, data_format, dilation_rate)
            return conv_as_matmul(inputs, kernel, strides, padding, dilation_rate)

        conv._mlreg_hook = True  # type: ignore[attr-defined]
        backend.nn.conv = conv


def conv_as_matmul(inputs: Any, kernel: Any, strides: Any, padding: str, dilation_rate: Any) -> Any:
    """A channels-last convolution (1-, 2- or 3-D, no groups) as a matrix product: each window
    position's slice of the (padded) input, side by side, times the kernel as a
    `[window x in, out]` matrix. Padding `same` pads as XLA and TensorFlow do (the extra one
    after)."""
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
    patches = ops.concatenate(columns, axis=-1) if len(columns) > 1 else columns[0]
    return ops.matmul(patches, ops.reshape(kernel, (-1, kernel.shape[-1])))
