"""User builders for the tests, named as "tests.builders:function" in experiment files."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from mlreg.models import build_mlp


def small(hp: dict):
    return build_mlp(hp["n_features"], hp["n_outputs"], hp["task"], hidden=hp["hidden"], l2=hp["l2"])


def kill_once(hp: dict):
    """SIGKILLs its own process the first time it builds the l2=0.01 model (a crash mid-sweep)."""
    marker = Path(os.environ["MLREG_KILL_MARKER"])
    if hp["l2"] == 0.01 and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return small(hp)


def broken(hp: dict):
    raise RuntimeError("this builder always fails")


def not_a_model(hp: dict):
    return "not a model"


def interrupt_once(hp: dict):
    """Ctrl-C the first time the l2=0.01 model is built, turned into an ordinary exception
    the way native code may turn it (the worst case: it must not be recorded as a failure)."""
    marker = Path(os.environ["MLREG_KILL_MARKER"])
    if hp["l2"] == 0.01 and not marker.exists():
        marker.touch()
        try:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10**6):  # the interrupt lands within a few bytecodes
                pass
        except KeyboardInterrupt:
            raise RuntimeError("cancelled") from None
    return small(hp)
