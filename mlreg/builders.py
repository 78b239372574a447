"""The built-in builders: a Sequential MLP (`build_mlp`), a Functional residual MLP
(`build_residual_mlp`), a Functional wide-and-deep model (`build_wide_deep`) and a convolutional
model (`build_cnn`: Conv1D on `[T, C]` sequences, Conv2D on `[H, W, C]` images), each with the
kinds of regularization whose entries name it (`mlreg.spec.KINDS`); a kind applied to kernels
that the signature does not name comes in `**penalties`. They return plain uncompiled
`keras.Model`s; `mlreg.models` compiles them and runs the user's own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mlreg.backend import import_keras
from mlreg.errors import InputError
from mlreg.regularizers import kernel_regularizer
from mlreg.tasks import TABLE

if TYPE_CHECKING:
    import keras

Rates = float | Sequence[float]
Shape = int | Sequence[int]


def output_activation(task: str) -> str:
    """`softmax` for single-label, `sigmoid` for binary and multi-label, `linear` for regression."""
    return TABLE[task].activation


def _rate(rates: Rates, i: int) -> float:
    return float(rates if isinstance(rates, int | float) else rates[i])


def _kernel(rates: Mapping[str, Rates], i: int) -> Any:
    """The regularizer of the `i`-th kernel: each kind applied to kernels at its rate there."""
    return kernel_regularizer(**{name: _rate(r, i) for name, r in rates.items()})


def _max_norm(max_norm: float, dims: int) -> Any:
    """`MaxNorm(max_norm)` over each output unit's incoming weights (every axis of a kernel of
    `dims` dimensions but the last), or `None` for 0."""
    keras = import_keras()

    return keras.constraints.MaxNorm(max_norm, axis=0 if dims == 2 else list(range(dims - 1))) if max_norm else None


def _dense(units: int, i: int, rates: Mapping[str, Rates], name: str, activation: str | None = None,
           max_norm: float = 0.0):
    keras = import_keras()

    return keras.layers.Dense(
        units,
        activation=activation,
        kernel_regularizer=_kernel(rates, i),
        kernel_constraint=_max_norm(max_norm, 2),
        name=name,
    )


def _on_inputs(shape: tuple[int, ...], augment: float, noise: float) -> list[Any]:
    """The layers a built-in builder puts on its inputs: augmentation, then input noise (each only
    when above 0, so that a model without them is the model mlreg always built)."""
    keras = import_keras()

    from mlreg.layers import Augment

    if augment and len(shape) not in (2, 3):
        raise InputError(f"Invalid value for `augment`: it takes images [H, W, C] or sequences [T, C]; the samples "
                         f"are {list(shape)}: give [data] a `shape`. Received: augment={augment}")
    return ([Augment(augment, name="augment")] if augment else []) + (
        [keras.layers.GaussianNoise(noise, name="noise")] if noise else [])


def _after_hidden(i: int, activation: str, *, batch_norm: bool = False, hidden_noise: float = 0.0,
                  dropout: float = 0.0, spatial: Any = None, spatial_dropout: float = 0.0,
                  named: bool = True) -> list[Any]:
    """What follows a hidden layer's kernel (built without its activation when `batch_norm`):
    BatchNormalization and the activation, hidden noise, spatial dropout, dropout; each only
    when asked for, so that a model without them is the model mlreg always built (the residual
    and wide-and-deep models' layers keep Keras's own names, `named=False`, as they always had)."""
    keras = import_keras()

    def name(what: str) -> str | None:
        return f"{what}_{i + 1}" if named else None

    out: list[Any] = []
    if batch_norm:
        out += [keras.layers.BatchNormalization(name=name("batch_norm")),
                keras.layers.Activation(activation, name=name("activation"))]
    if hidden_noise:
        out.append(keras.layers.GaussianNoise(hidden_noise, name=name("hidden_noise")))
    if spatial_dropout:
        out.append(spatial(spatial_dropout, name=name("spatial_dropout")))
    if dropout:
        out.append(keras.layers.Dropout(dropout, name=name("dropout")))
    return out


def _apply(layers: Sequence[Any], x: Any) -> Any:
    for layer in layers:
        x = layer(x)
    return x


def _shape(input_shape: Shape) -> tuple[int, ...]:
    return (int(input_shape),) if isinstance(input_shape, int) else tuple(int(d) for d in input_shape)


def _flat_input(input_shape: Shape, name: str | None = None, *, augment: float = 0.0,
                noise: float = 0.0) -> tuple[Any, Any]:
    """The model's input and its features as one vector (after augmentation and input noise, a
    Flatten for images and sequences)."""
    keras = import_keras()

    inputs = keras.Input(_shape(input_shape), name=name)
    x = _apply(_on_inputs(_shape(input_shape), augment, noise), inputs)
    return inputs, (keras.layers.Flatten(name="flatten")(x) if len(inputs.shape) > 2 else x)


def build_mlp(
    input_shape: Shape,
    n_outputs: int,
    task: str,
    *,
    hidden: Sequence[int] = (64, 64),
    activation: str = "relu",
    dropout: float = 0.0,
    l1: Rates = 0.0,
    l2: Rates = 0.0,
    noise: float = 0.0,
    hidden_noise: float = 0.0,
    max_norm: float = 0.0,
    augment: float = 0.0,
    batch_norm: bool = False,
    **penalties: Rates,
) -> keras.Sequential:
    """A Sequential MLP: Dense (+ Dropout) per hidden layer, then the task's head.

    Args:
        input_shape: the shape of one sample (an int for flat features; images and
            sequences are flattened first).
        n_outputs: units of the output layer.
        task: `single_label`, `binary`, `multi_label` or `regression`.
        hidden: hidden-layer sizes. Defaults to `(64, 64)`.
        activation: `relu`, `leaky_relu`, `elu`, `tanh`, `sigmoid`, ... Defaults to `"relu"`.
        dropout: rate of the Dropout after each hidden layer. Defaults to `0.0`.
        l1: L1 rate, for all Dense layers or one per layer (hidden..., output). Defaults to `0.0`.
        l2: L2 rate, likewise. Defaults to `0.0`.
        noise: standard deviation of Gaussian noise on the inputs (training only). Defaults to `0.0`.
        hidden_noise: likewise after each hidden layer. Defaults to `0.0`.
        max_norm: a `MaxNorm` constraint on every kernel; 0 is none. Defaults to `0.0`.
        augment: augmentation strength of images or sequences (`mlreg.layers.Augment`).
            Defaults to `0.0`.
        batch_norm: BatchNormalization between each hidden Dense and its activation.
            Defaults to `False`.
        **penalties: the other kinds applied to kernels (`mlreg.spec.add_kind`), by name: a
            rate for every layer or one per layer, as `l1`.

    Returns:
        An uncompiled `keras.Sequential` with layers `hidden_1`, ..., `output`.

    Example:
        >>> m = build_mlp(4, 3, "single_label", hidden=(8,), l2=1e-3)
        >>> [layer.name for layer in m.layers]
        ['hidden_1', 'output']
    """
    keras = import_keras()
    rates = {"l1": l1, "l2": l2, **penalties}

    shape = _shape(input_shape)
    layers: list[Any] = [keras.Input(shape), *_on_inputs(shape, augment, noise)]
    layers += [keras.layers.Flatten(name="flatten")] if len(shape) > 1 else []
    for i, units in enumerate(hidden):
        layers.append(_dense(units, i, rates, f"hidden_{i + 1}", None if batch_norm else activation, max_norm))
        layers += _after_hidden(i, activation, batch_norm=batch_norm, hidden_noise=hidden_noise, dropout=dropout)
    layers.append(_dense(n_outputs, len(hidden), rates, "output", output_activation(task), max_norm))
    return keras.Sequential(layers, name="mlp")


def build_residual_mlp(
    input_shape: Shape,
    n_outputs: int,
    task: str,
    *,
    hidden: Sequence[int] = (64, 64),
    activation: str = "relu",
    dropout: float = 0.0,
    l1: Rates = 0.0,
    l2: Rates = 0.0,
    noise: float = 0.0,
    hidden_noise: float = 0.0,
    max_norm: float = 0.0,
    augment: float = 0.0,
    **penalties: Rates,
) -> keras.Model:
    """A Functional residual MLP: each hidden layer after the first adds a skip connection.

    `x_{i+1} = x_i + Dropout(act(Dense(x_i)))`, with a linear projection on the
    skip when the width changes. Arguments as in `build_mlp` (no `batch_norm`).
    """
    keras = import_keras()
    rates = {"l1": l1, "l2": l2, **penalties}

    inputs, x = _flat_input(input_shape, "features", augment=augment, noise=noise)
    after = {"hidden_noise": hidden_noise, "dropout": dropout, "named": False}
    x = _apply([_dense(hidden[0], 0, rates, "hidden_1", activation, max_norm)], x)
    x = _apply(_after_hidden(0, activation, **after), x)
    for i, units in enumerate(hidden[1:], start=1):
        y = _dense(units, i, rates, f"hidden_{i + 1}", activation, max_norm)(x)
        y = _apply(_after_hidden(i, activation, **after), y)
        if x.shape[-1] != units:
            x = _dense(units, i, rates, f"skip_{i + 1}", max_norm=max_norm)(x)
        x = keras.layers.Add(name=f"residual_{i + 1}")([x, y])
    outputs = _dense(n_outputs, len(hidden), rates, "output", output_activation(task), max_norm)(x)
    return keras.Model(inputs, outputs, name="residual_mlp")


def build_wide_deep(
    input_shape: Shape,
    n_outputs: int,
    task: str,
    *,
    hidden: Sequence[int] = (64, 64),
    activation: str = "relu",
    dropout: float = 0.0,
    l1: Rates = 0.0,
    l2: Rates = 0.0,
    noise: float = 0.0,
    hidden_noise: float = 0.0,
    max_norm: float = 0.0,
    augment: float = 0.0,
    **penalties: Rates,
) -> keras.Model:
    """A Functional wide-and-deep model: the raw features (wide, linear) and an MLP
    branch (deep) are concatenated before the output layer. Arguments as in `build_mlp` (no
    `batch_norm`).
    """
    keras = import_keras()
    rates = {"l1": l1, "l2": l2, **penalties}

    inputs, features = _flat_input(input_shape, "features", augment=augment, noise=noise)
    deep = features
    for i, units in enumerate(hidden):
        deep = _dense(units, i, rates, f"hidden_{i + 1}", activation, max_norm)(deep)
        deep = _apply(_after_hidden(i, activation, hidden_noise=hidden_noise, dropout=dropout, named=False), deep)
    merged = keras.layers.Concatenate(name="wide_and_deep")([features, deep])
    outputs = _dense(n_outputs, len(hidden), rates, "output", output_activation(task), max_norm)(merged)
    return keras.Model(inputs, outputs, name="wide_deep")


def build_cnn(
    input_shape: Shape,
    n_outputs: int,
    task: str,
    *,
    filters: Sequence[int] = (25, 25, 25),
    kernel_size: int | Sequence[int] = (5, 3, 3),
    strides: int | Sequence[int] = 2,
    pool: int | Sequence[int] = 1,
    activation: str = "relu",
    dropout: float = 0.0,
    l1: Rates = 0.0,
    l2: Rates = 0.0,
    noise: float = 0.0,
    hidden_noise: float = 0.0,
    max_norm: float = 0.0,
    augment: float = 0.0,
    batch_norm: bool = False,
    spatial_dropout: float = 0.0,
    **penalties: Rates,
) -> keras.Model:
    """A convolutional model: blocks of convolution (+ max-pooling) (+ Dropout), then the
    flattened features into the task's head. Conv1D for sequences `[T, C]`, Conv2D for images
    `[H, W, C]` (padding `same`). The defaults are the MNIST-1D paper's CNN (Greydanus & Kobak
    2020): three convolutions of 25 filters, kernels 5, 3, 3, stride 2, then a linear layer.

    Args:
        input_shape: the shape of one sample, `[T, C]` or `[H, W, C]`.
        n_outputs: units of the output layer.
        task: `single_label`, `binary`, `multi_label` or `regression`.
        filters: filters of each block. Defaults to `(25, 25, 25)`.
        kernel_size: of every block, or one per block. Defaults to `(5, 3, 3)`.
        strides: of every block, or one per block. Defaults to `2`.
        pool: max-pooling size after every block, or one per block; 1 is none. Defaults to `1`.
        activation: of the convolutions. Defaults to `"relu"`.
        dropout: rate of the Dropout after each block. Defaults to `0.0`.
        l1: L1 rate on every kernel, or one per block then the output layer. Defaults to `0.0`.
        l2: L2 rate, likewise. Defaults to `0.0`.
        noise, hidden_noise, max_norm, augment, batch_norm: as in `build_mlp`, per block.
        spatial_dropout: rate of a SpatialDropout1D/2D after each block. Defaults to `0.0`.
        **penalties: as in `build_mlp`, per block.

    Raises:
        InputError: a flat input (samples x features): give the data a `shape`.

    Example:
        >>> m = build_cnn((40, 1), 10, "single_label")
        >>> [layer.name for layer in m.layers][1:]
        ['conv_1', 'conv_2', 'conv_3', 'flatten', 'output']
    """
    keras = import_keras()
    rates = {"l1": l1, "l2": l2, **penalties}

    shape = _shape(input_shape)
    if len(shape) not in (2, 3):
        raise InputError(f"Invalid value for `data.shape`: the cnn builder takes sequences [T, C] or images "
                         f"[H, W, C]; the data are {list(shape)}: give [data] a `shape`, e.g. shape = [{shape[0]}, 1] "
                         f"for a sequence. Received: shape={list(shape)}")
    conv, pooling, spatial = ((keras.layers.Conv1D, keras.layers.MaxPooling1D, keras.layers.SpatialDropout1D)
                              if len(shape) == 2 else
                              (keras.layers.Conv2D, keras.layers.MaxPooling2D, keras.layers.SpatialDropout2D))

    def each(v: int | Sequence[int], i: int) -> int:
        return int(v) if isinstance(v, int) else int(v[i])

    inputs = keras.Input(shape, name="inputs")
    x = _apply(_on_inputs(shape, augment, noise), inputs)
    for i, n in enumerate(filters):
        x = conv(n, each(kernel_size, i), strides=each(strides, i), padding="same",
                 activation=None if batch_norm else activation,
                 kernel_regularizer=_kernel(rates, i),
                 kernel_constraint=_max_norm(max_norm, len(shape) + 1), name=f"conv_{i + 1}")(x)
        tail = _after_hidden(i, activation, batch_norm=batch_norm, hidden_noise=hidden_noise, dropout=dropout,
                             spatial=spatial, spatial_dropout=spatial_dropout)
        x = _apply(tail[:2] if batch_norm else [], x)
        if each(pool, i) > 1:
            x = pooling(each(pool, i), padding="same", name=f"pool_{i + 1}")(x)
        x = _apply(tail[2:] if batch_norm else tail, x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = _dense(n_outputs, len(filters), rates, "output", output_activation(task), max_norm)(x)
    return keras.Model(inputs, outputs, name="cnn")
