"""Shared fixtures: Agg backend, quiet TensorFlow, a tiny experiment."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def tiny_spec_dict(**overrides: object) -> dict:
    """A few-second experiment: 16-unit MLP on 200 digits, 3 epochs."""
    d: dict = {
        "name": "tiny",
        "seeds": 1,
        "data": {"dataset": "digits", "train_size": 200},
        "model": {"hidden": [16]},
        "training": {"epochs": 3, "batch_size": 32},
        "early_stopping": {"patience": 2},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(d.get(key), dict):
            d[key] = {**d[key], **value}
        else:
            d[key] = value
    return d


@pytest.fixture
def tiny_spec():
    from mlreg.spec import ExperimentSpec

    return ExperimentSpec.from_dict(tiny_spec_dict())


def write_toml(path: Path, d: dict) -> Path:
    from mlreg.spec import dumps_toml

    path.write_text(dumps_toml(d))
    return path
