"""User builders for the tests, named as "tests.builders:function" in experiment files."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import keras  # noqa: F401 - as a user's module would; TensorFlow's log lines must stay out of the console

from mlreg.models import build_mlp


def small(n_features, n_outputs, task, hidden, l2):
    """The builder a user would write: keyword arguments named as the parameters."""
    return build_mlp(n_features, n_outputs, task, hidden=hidden, l2=l2)


def everything(**hp):
    """A builder that takes every argument mlreg gives."""
    return small(hp["n_features"], hp["n_outputs"], hp["task"], hp["hidden"], hp["l2"])


def kill_once(**hp):
    """SIGKILLs its own process the first time it builds the l2=0.01 model (a crash mid-sweep)."""
    marker = Path(os.environ["MLREG_KILL_MARKER"])
    if hp["l2"] == 0.01 and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return everything(**hp)


def broken(**hp):
    raise RuntimeError("this builder always fails")


def fails_once(**hp):
    """Fails the first time (until the marker file exists): a cause fixed between two runs."""
    marker = Path(os.environ["MLREG_KILL_MARKER"])
    if not marker.exists():
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
    marker = Path(os.environ["MLREG_KILL_MARKER"])
    if hp["l2"] == 0.01 and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), getattr(signal, os.environ.get("MLREG_SIGNAL", "SIGINT")))
    return everything(**hp)


def interrupt_driver_once(**hp):
    """In a worker process: sends Ctrl-C to the driver (its parent) the first time the l2=0.01
    model is built, as a user pressing Ctrl-C while packs are still out."""
    marker = Path(os.environ["MLREG_KILL_MARKER"])
    if hp["l2"] == 0.01 and not marker.exists():
        marker.touch()
        os.kill(os.getppid(), signal.SIGINT)
    return everything(**hp)


def dies_always(**hp):
    """SIGKILLs its own (worker) process whenever it builds the l2=0.01 model."""
    if hp["l2"] == 0.01:
        os.kill(os.getpid(), signal.SIGKILL)
    return everything(**hp)
