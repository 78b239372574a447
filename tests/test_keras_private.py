"""Every private Keras API mlreg uses (mlreg.keras_private) does what mlreg relies on: a Keras
release that moves or changes one fails here, by name, not somewhere deep in a sweep."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mlreg import keras_private
from tests.conftest import ROOT

pytestmark = pytest.mark.backends


def test_the_version_checked_and_the_one_installed_are_within_the_pin():
    # the tests below run on whatever Keras is installed and say by name what no longer holds;
    # CHECKED_WITH is the release they last passed on, and the pin admits no release below it
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pin = next(Requirement(d) for d in project["dependencies"] if Requirement(d).name == "keras")
    assert pin.specifier.contains(keras_private.CHECKED_WITH) and pin.specifier.contains(keras.__version__)
    floor = next(s.version for s in pin.specifier if s.operator == ">=")
    assert keras_private.CHECKED_WITH.startswith(floor), (pin, keras_private.CHECKED_WITH)


def test_convolution_layers_call_the_backend_op_through_the_module():
    backend = keras_private.backend_ops()
    calls = []
    original = backend.nn.conv

    def spy(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    backend.nn.conv = spy
    try:
        keras.layers.Conv1D(2, 3)(np.zeros((1, 5, 1), "float32"))
    finally:
        backend.nn.conv = original
    assert calls, "keras.src.backend.nn.conv is no longer what Conv layers call"
    assert keras_private.standardize_data_format(None) == "channels_last"


def test_default_seeds_come_from_the_module_generator():
    import random

    module = keras_private.seed_module()
    saved = module.python_random
    try:
        module.python_random = random.Random(5)
        a = keras.random.SeedGenerator()
        module.python_random = random.Random(5)
        b = keras.random.SeedGenerator()
    finally:
        module.python_random = saved
    np.testing.assert_array_equal(np.asarray(a.state.value), np.asarray(b.state.value))


def test_the_tensorflow_flag_is_a_lazy_module_with_availability():
    flag = keras_private.tensorflow_flag()
    assert isinstance(flag._available, bool | type(None))


def test_the_base_optimizer_has_the_methods_the_engine_takes():
    base = keras_private.base_optimizer()
    for name in ("stateless_apply", "assign", "assign_add", "assign_sub", "_backend_update_step",
                 "_apply_weight_decay", "_var_key"):
        assert callable(getattr(base, name, None)), name
    assert issubclass(type(keras.optimizers.Adam()), base)


def test_noise_shapes_and_seeds_convert_as_keras_dropout_does():
    x = keras.ops.zeros((4, 3))
    assert tuple(keras_private.noise_shape(x, (None, 1))) == (4, 1)
    if keras.backend.backend() == "tensorflow":
        seed = keras_private.tensorflow_seed(keras.ops.convert_to_tensor(np.array([7, 2], "int64")))
        assert seed.dtype.name == "int32"
