"""mlreg: regularization experiments on Keras, recorded honestly in CSV.

Importing mlreg is cheap: TensorFlow is imported only where training happens.

Example:
    >>> import mlreg
    >>> spec = mlreg.load_spec("experiments/l2_rate.toml")  # doctest: +SKIP
    >>> mlreg.run(spec)  # doctest: +SKIP
    >>> mlreg.compare(mlreg.load_results("results/l2_rate"))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__version__ = "0.5.0"

_EXPORTS = {
    "load_spec": "mlreg.spec",
    "ExperimentSpec": "mlreg.spec",
    "RunSpec": "mlreg.spec",
    "SpecError": "mlreg.spec",
    "InputError": "mlreg.spec",
    "run": "mlreg.runner",
    "sweep": "mlreg.api",
    "validation_curve": "mlreg.api",
    "ArrayData": "mlreg.memory",
    "SweepReport": "mlreg.runner",
    "load_results": "mlreg.analysis.results",
    "Results": "mlreg.analysis.results",
    "ResultsError": "mlreg.analysis.results",
    "compare": "mlreg.analysis.compare",
    "kinds": "mlreg.analysis.kinds",
    "load_data": "mlreg.data",
    "DATASETS": "mlreg.spec",
    "build_mlp": "mlreg.models",
    "build_residual_mlp": "mlreg.models",
    "build_wide_deep": "mlreg.models",
    "build_cnn": "mlreg.models",
    "compile_model": "mlreg.models",
    "freeze": "mlreg.models",
    "freeze_strategy_for": "mlreg.models",
    "transfer_model": "mlreg.models",
    "load_base_model": "mlreg.models",
    "kernel_regularizer": "mlreg.regularizers",
    "apply_regularization": "mlreg.regularizers",
    "RunResult": "mlreg.records",
    "HonestLogger": "mlreg.callbacks",
    "Recorder": "mlreg.recorder",
}
_MODULES = {"plots": "mlreg.analysis.plots", "report": "mlreg.analysis.report"}

__all__ = sorted([*_EXPORTS, *_MODULES, "__version__"])


def __getattr__(name: str) -> Any:
    import importlib

    if name in _MODULES:
        return importlib.import_module(_MODULES[name])
    if name in _EXPORTS:
        attr = "load" if name == "load_data" else name
        return getattr(importlib.import_module(_EXPORTS[name]), attr)
    raise AttributeError(f"module 'mlreg' has no attribute {name!r}")
