"""User builders for the tests, named as "tests.builders:function" in experiment files."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import keras  # noqa: F401 - as a user's module would; TensorFlow's log lines must stay out of the console

from mlreg.models import build_mlp, checking


def small(n_features, n_outputs, task, hidden, l2):
    """The builder a user would write: keyword arguments named as the parameters."""
    return build_mlp(n_features, n_outputs, task, hidden=hidden, l2=l2)


def everything(**hp):
    """A builder that takes every argument mlreg gives."""
    return small(hp["n_features"], hp["n_outputs"], hp["task"], hp["hidden"], hp["l2"])


def kill_once(**hp):
    """SIGKILLs its own process the first time it builds the l2=0.01 model (a crash mid-sweep)."""
    if checking():  # the driver's check before training: build, never kill
        return everything(**hp)
    marker = Path(os.environ["MLREG_KILL_MARKER"])
    if hp["l2"] == 0.01 and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return everything(**hp)


def broken(**hp):
    raise RuntimeError("this builder always fails")


def fails_once(**hp):
    """Fails the first time it builds the model of seed 1 (until the marker file exists): a cause
    fixed between two runs. Seed 0's model, which the driver checks, always builds."""
    from keras.src.utils.rng_utils import get_random_seed

    marker = Path(os.environ["MLREG_KILL_MARKER"])
    if get_random_seed() == 1 and not marker.exists():
        marker.touch()
        raise RuntimeError("the data server was down")
    return everything(**hp)


def needs_more(n_features, n_outputs, depth):
    return None


def not_a_model(**hp):
    return "not a model"


def interrupt_once(**hp):
    """Sends Ctrl-C (or `MLREG_SIGNAL`) to its own process the first time the l2=0.01 model is
    built, then goes on building: the sweep must stop at the next safe point, record nothing
    of this run and keep the runs before it."""
    if checking():  # the driver's check before training: build, never kill
        return everything(**hp)
    marker = Path(os.environ["MLREG_KILL_MARKER"])
    if hp["l2"] == 0.01 and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), getattr(signal, os.environ.get("MLREG_SIGNAL", "SIGINT")))
    return everything(**hp)


def interrupt_driver_once(**hp):
    """In a worker process: sends Ctrl-C to the driver (its parent) the first time the l2=0.01
    model is built, as a user pressing Ctrl-C while packs are still out."""
    if checking():  # the driver's check before training: build, never kill
        return everything(**hp)
    marker = Path(os.environ["MLREG_KILL_MARKER"])
    if hp["l2"] == 0.01 and not marker.exists():
        marker.touch()
        os.kill(os.getppid(), signal.SIGINT)
    return everything(**hp)


def dies_always(**hp):
    """SIGKILLs its own (worker) process whenever it builds the l2=0.01 model."""
    if checking():  # the driver's check before training: build, never kill
        return everything(**hp)
    if hp["l2"] == 0.01:
        os.kill(os.getpid(), signal.SIGKILL)
    return everything(**hp)


def functional_skip(input_shape, n_outputs, output_activation, hidden, dropout, l2):
    """A user's Functional MLP with a skip connection, regularized with mlreg's helper."""
    inputs = keras.Input(input_shape)
    h = keras.layers.Dense(hidden[0], activation="relu")(inputs)
    y = keras.layers.Dropout(dropout)(keras.layers.Dense(hidden[0], activation="tanh")(h))
    h = keras.layers.Add()([h, y])
    outputs = keras.layers.Dense(n_outputs, activation=output_activation)(h)
    from mlreg import apply_regularization

    return apply_regularization(keras.Model(inputs, outputs), l2=l2)


def batch_norm(input_shape, n_outputs, output_activation, hidden, l2):
    """A Sequential model with BatchNormalization (moving statistics are per run)."""
    reg = keras.regularizers.L2(l2) if l2 else None
    return keras.Sequential([keras.Input(input_shape), keras.layers.Dense(hidden[0], kernel_regularizer=reg),
                             keras.layers.BatchNormalization(), keras.layers.Activation("relu"),
                             keras.layers.Dense(n_outputs, activation=output_activation, kernel_regularizer=reg)])


def conv2d(input_shape, n_outputs, output_activation, dropout, l2):
    """A user's Conv2D model for images."""
    reg = keras.regularizers.L2(l2) if l2 else None
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(6, 3, activation="relu", kernel_regularizer=reg)(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(n_outputs, activation=output_activation, kernel_regularizer=reg)(x))


class _OwnStep(keras.Model):
    def train_step(self, *args, **kwargs):
        return super().train_step(*args, **kwargs)


def own_train_step(input_shape, n_outputs, output_activation):
    """A model that trains itself: the fused engine must leave it to `model.fit`."""
    inputs = keras.Input(input_shape)
    return _OwnStep(inputs, keras.layers.Dense(n_outputs, activation=output_activation)(inputs))


def fails_for_seed_1(**hp):
    """Builds for seed 0 (what the driver checks) and fails, with a long message, for seed 1 (and
    seeds from 1000 on)."""
    from keras.src.utils.rng_utils import get_random_seed

    if get_random_seed() == 1 or get_random_seed() >= 1000:
        raise RuntimeError("the database said: " + "x" * 500)
    return everything(**hp)


def takes_hp(hp):
    """A builder written for another tool: one dict of hyperparameters."""
    return everything(**hp)


def returns_dict(**hp):
    return {"model": everything(**hp)}


def returns_layer(**hp):
    return keras.layers.Dense(3)


def seven_linear(input_shape):
    """7 linear outputs, whatever the task."""
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, keras.layers.Dense(7)(inputs))


def ignores_l2(input_shape, n_outputs, output_activation, l2):
    """Takes `l2` and never applies it."""
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, keras.layers.Dense(n_outputs, activation=output_activation)(inputs))


def records_pid(**hp):
    """Writes the pid of the process that builds it (the driver checks one, workers train)."""
    with open(os.environ["MLREG_KILL_MARKER"], "a") as f:
        f.write(f"{os.getpid()}\n")
    return everything(**hp)


class _HostTanh(keras.layers.Layer):
    """A layer that computes on the host (NumPy) through the backend's callback op: fine under
    jit and `model.fit`, not under `jax.vmap` (a `pure_callback` without a `vmap_method`)."""

    def call(self, x):
        import jax
        import numpy as np

        return jax.pure_callback(lambda a: np.tanh(a).astype(a.dtype), jax.ShapeDtypeStruct(x.shape, x.dtype), x)


def host_callback(input_shape, n_outputs, output_activation, l2):
    """On JAX: a model the fused engine cannot map over runs (it goes to the keras engine)."""
    inputs = keras.Input(input_shape)
    x = _HostTanh()(inputs)
    x = keras.layers.Dense(16, activation="relu", kernel_regularizer=keras.regularizers.L2(l2) if l2 else None)(x)
    return keras.Model(inputs, keras.layers.Dense(n_outputs, activation=output_activation)(x))


def every_kind(input_shape, n_outputs, output_activation, augment, max_norm, dropout):
    """A user's image model with mlreg's augmentation layer and a max-norm constraint, by keyword."""
    from mlreg.layers import Augment

    constraint = keras.constraints.MaxNorm(max_norm) if max_norm else None
    inputs = keras.Input(input_shape)
    x = keras.layers.Flatten()(Augment(augment)(inputs))
    x = keras.layers.Dense(16, activation="relu", kernel_constraint=constraint)(x)
    x = keras.layers.Dropout(dropout)(x)
    return keras.Model(inputs, keras.layers.Dense(n_outputs, activation=output_activation)(x))
