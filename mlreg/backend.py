"""The Keras backend of this process: TensorFlow or JAX, chosen once, before Keras is imported.

Keras 3 reads `KERAS_BACKEND` when it is first imported and cannot switch afterwards. mlreg
chooses it from `--backend` (`mlreg.run(backend=...)`), else `KERAS_BACKEND`, else
`DEFAULT_BACKEND`; worker processes use the driver's. Initial weights, dropout draws and batch
order differ between backends, so every run records the backend that trained it.

Nothing here imports Keras until `import_keras` is called.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from mlreg.spec import BACKENDS, SpecError

DEFAULT_BACKEND = "tensorflow"
"""The backend when neither `--backend` nor `KERAS_BACKEND` names one."""

PACKAGES = {"jax": "jax", "tensorflow": "tensorflow"}
"""The package of each backend of `mlreg.spec.BACKENDS` (its version goes into the manifest)."""


def choose_backend(name: str | None = None) -> str:
    """Sets the Keras backend of this process and returns it: `name`, else `KERAS_BACKEND`,
    else `DEFAULT_BACKEND`. Keras reads it once, when it is first imported, so this must run
    before; once Keras is imported, its backend is the answer.

    Raises:
        SpecError: a backend mlreg does not train on, or `name` differs from the backend Keras
            was already imported with in this process.
    """
    where = "backend" if name is not None else "KERAS_BACKEND"
    wanted = name if name is not None else os.environ.get("KERAS_BACKEND") or None
    if wanted is not None and wanted not in BACKENDS:
        raise SpecError(f"Invalid value for `{where}`: mlreg trains on one of {list(BACKENDS)}. "
                        f"Received: {where}={wanted!r}")
    if "keras" in sys.modules and hasattr(sys.modules["keras"], "backend"):
        active = sys.modules["keras"].backend.backend()
        if name is not None and name != active:
            raise SpecError(f"Invalid value for `backend`: Keras was already imported with the {active} backend in "
                            f"this process; set KERAS_BACKEND={name} before importing keras (or mlreg). "
                            f"Received: backend={name!r}")
        return active
    os.environ["KERAS_BACKEND"] = wanted or DEFAULT_BACKEND
    return os.environ["KERAS_BACKEND"]


def backend() -> str:
    """The backend this process trains with (Keras imported if it was not)."""
    return import_keras().backend.backend()


def import_keras(verbose: bool = False) -> Any:
    """Imports Keras once, on the backend `choose_backend` picks, with TensorFlow's C++ log noise
    silenced, and returns the `keras` module.

    TensorFlow 2.21 prints absl and CUDA-probe lines while it is imported, whatever
    `TF_CPP_MIN_LOG_LEVEL` says, and Keras imports it on either backend
    (`keras.utils.set_random_seed` seeds it too), so file descriptor 2 points at /dev/null while
    both are imported. Python exceptions still propagate. `verbose=True` keeps everything.
    """
    if "keras" in sys.modules and "tensorflow" in sys.modules:
        return sys.modules["keras"]
    choose_backend()
    if verbose:
        import keras
        return keras
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return keras
