"""The Keras backend of this process: TensorFlow or JAX, chosen once, before Keras is imported.

Keras 3 reads `KERAS_BACKEND` when it is first imported and cannot switch afterwards. mlreg
chooses it from `--backend` (`mlreg.run(backend=...)`), else `KERAS_BACKEND`, else
`DEFAULT_BACKEND`; worker processes use the driver's. Initial weights, dropout draws and batch
order differ between backends, so every run records the backend that trained it.

Nothing here imports Keras until `import_keras` is called.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlreg.spec import BACKENDS, SpecError

DEFAULT_BACKEND = "jax"
"""The backend when neither `--backend` nor `KERAS_BACKEND` names one: measured faster for every
sweep of benchmarks/bench_engines.py, and the one whose compiled program draws exactly
`model.fit`'s dropout masks (see `mlreg.engines.fused`)."""

PACKAGES = {"jax": "jax", "tensorflow": "tensorflow"}
"""The package of each backend of `mlreg.spec.BACKENDS` (its version goes into the manifest)."""

CACHE_ENV = "MLREG_CACHE_DIR"
"""Where mlreg keeps what it learns once per machine: compiled programs (JAX's persistent
compilation cache, `jax/`), measured pack sizes (`packs.json`) and the models the fused
engine traced (`probed.json`). Unset: `$XDG_CACHE_HOME/mlreg`,
else `~/.cache/mlreg`; `off` keeps nothing."""

COMPILE_SECONDS = 0.1
"""Programs that took at least this long to compile are kept on disk (JAX's default, 1 s, leaves
out most of the keras engine's: measured on the 10-run dropout test, 68 s with 1 s, 54 s with
every program kept, 58 s with 0.1 s, against 110 s without the cache)."""

def cache_dir() -> Path | None:
    """mlreg's per-user cache (see `CACHE_ENV`), or `None` when it is turned off."""
    setting = os.environ.get(CACHE_ENV, "")
    if setting.lower() in ("off", "0", "false", "no"):
        return None
    if setting:
        return Path(setting)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlreg"


def _compilation_cache() -> None:
    """Keeps JAX's compiled programs on disk (`cache_dir() / "jax"`), so that worker processes,
    resumed sweeps, the rounds of a search and the keras engine's runs of one model do not compile
    the same program twice. Nothing is evicted (JAX needs `filelock` for that): the folder can be
    deleted at any time. Set through JAX's own environment variables, which JAX reads when it
    is imported and worker processes inherit (or through its config, when JAX is imported already
    and has compiled nothing yet). Left alone when the user set JAX's cache
    (`JAX_COMPILATION_CACHE_DIR`) or turned mlreg's off. TensorFlow keeps no compiled graphs
    across processes."""
    root = cache_dir()
    if root is None or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    settings = {"jax_compilation_cache_dir": str(root / "jax"),
                "jax_persistent_cache_min_compile_time_secs": COMPILE_SECONDS,
                "jax_persistent_cache_min_entry_size_bytes": -1}  # JAX's docs: -1 lets small programs in
    for name, value in settings.items():
        os.environ.setdefault(name.upper(), str(value))
    jax = sys.modules.get("jax")
    if jax is not None and jax.config.jax_compilation_cache_dir is None:
        for name, value in settings.items():
            jax.config.update(name, type(value)(os.environ[name.upper()]))


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
    else:
        active = os.environ["KERAS_BACKEND"] = wanted or DEFAULT_BACKEND
    if active == "jax":
        _compilation_cache()
    return active


def backend() -> str:
    """The backend this process trains with (Keras imported if it was not)."""
    return import_keras().backend.backend()


def import_keras(verbose: bool = False) -> Any:
    """Imports Keras once, on the backend `choose_backend` picks (TensorFlow too when it is the
    backend), with TensorFlow's log lines silenced, and returns the `keras` module."""
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "backend") and (
            keras.backend.backend() != "tensorflow" or "tensorflow" in sys.modules):
        return keras
    choose_backend()
    with quiet(verbose):
        import keras

        if keras.backend.backend() == "tensorflow":
            import tensorflow  # noqa: F401
    if keras.backend.backend() != "tensorflow" and not verbose:
        _quiet_lazy_tensorflow()
    return keras


def _quiet_lazy_tensorflow() -> None:
    """On JAX, Keras imports TensorFlow lazily where it merely looks for its types (`model.save`
    does): that import, too, goes through `quiet`, so that its C++ start-up lines stay out of a
    user's script as they stay out of the command line."""
    from mlreg.keras_private import tensorflow_flag

    lazy = tensorflow_flag()
    if "tensorflow" in sys.modules or vars(lazy).get("_mlreg_quiet"):  # getattr would import it
        return
    initialize = lazy.initialize

    def quietly() -> None:
        with quiet():
            initialize()

    lazy.initialize, lazy._mlreg_quiet = quietly, True


def import_tensorflow(verbose: bool = False) -> Any:
    """Imports TensorFlow with its log lines silenced (what needs it on the JAX backend too)."""
    with quiet(verbose):
        import tensorflow
    return tensorflow


@contextlib.contextmanager
def quiet(verbose: bool = False) -> Iterator[None]:
    """File descriptor 2 points at /dev/null inside (unless `verbose`): TensorFlow 2.21 prints
    absl and CUDA-probe lines while it is imported, whatever `TF_CPP_MIN_LOG_LEVEL` says.
    Python exceptions still propagate."""
    if verbose:
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def set_seed(seed: int) -> None:
    """`keras.utils.set_random_seed(seed)`: Python's, NumPy's and Keras's global seeds, and
    TensorFlow's, which on the JAX backend changes nothing mlreg trains with and is left out
    there when TensorFlow is not imported (`without_tensorflow`)."""
    with without_tensorflow():
        import_keras().utils.set_random_seed(seed)


_SWAPS = threading.RLock()
"""Held while `seeded` or `without_tensorflow` has swapped a process-wide value of Keras's."""


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """`set_seed(seed)`, and inside, the Python random numbers Keras draws its default seeds
    from (initializers, Dropout's seed generators) come from a generator of that seed alone:
    the sequence `random.seed(seed)` gives, but one that another thread of the process (a Dask
    worker's event loop) drawing from Python's global generator cannot shift. Build models
    inside."""
    import random

    from mlreg.keras_private import seed_module

    with _SWAPS:  # another thread's build (a Dask worker runs tasks in threads) waits: the swap is process-wide
        set_seed(seed)
        seed_generator = seed_module()
        saved = seed_generator.python_random
        seed_generator.python_random = random.Random(seed)
        try:
            yield
        finally:
            seed_generator.python_random = saved


@contextlib.contextmanager
def without_tensorflow() -> Iterator[None]:
    """Inside, on the JAX backend while TensorFlow is not imported, Keras takes TensorFlow for
    not installed (Keras's own flag), so that what merely looks for TensorFlow types
    (`set_random_seed`, `get_config`) does not import it (1.3 s and some 300 MB a process)."""
    keras = import_keras()
    if keras.backend.backend() == "tensorflow" or "tensorflow" in sys.modules:
        yield
        return
    from mlreg.keras_private import tensorflow_flag

    lazy = tensorflow_flag()
    with _SWAPS:
        saved, lazy._available = lazy._available, False
        try:
            yield
        finally:
            lazy._available = saved
