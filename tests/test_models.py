from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from mlreg.models import (
    build_mlp,
    build_residual_mlp,
    build_wide_deep,
    compile_model,
    freeze,
    freeze_strategy_for,
    load_base_model,
    transfer_model,
    user_builder,
)
from mlreg.regularizers import apply_regularization, kernel_layers, kernel_regularizer
from mlreg.spec import TrainingSpec


@pytest.mark.parametrize("builder", [build_mlp, build_residual_mlp, build_wide_deep])
@pytest.mark.parametrize(("task", "units", "act"), [
    ("single_label", 3, "softmax"), ("binary", 1, "sigmoid"), ("multi_label", 4, "sigmoid"),
    ("regression", 1, "linear"),
])
def test_builders_give_the_task_head(builder, task, units, act):
    model = builder(5, units, task, hidden=(8, 4), dropout=0.1, l2=1e-3)
    assert model.output_shape == (None, units)
    assert model.get_layer("output").get_config()["activation"] == act
    assert model(np.zeros((2, 5), "float32")).shape == (2, units)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu", "tanh", "sigmoid"])
def test_activations(activation):
    m = build_mlp(3, 2, "single_label", hidden=(4,), activation=activation)
    assert m.get_layer("hidden_1").get_config()["activation"] == activation


def test_functional_models_are_functional_with_skips():
    res = build_residual_mlp(5, 2, "single_label", hidden=(8, 8, 4))
    assert not isinstance(res, keras.Sequential)
    assert any(isinstance(layer, keras.layers.Add) for layer in res.layers)
    assert "skip_3" in [layer.name for layer in res.layers]  # width change 8 -> 4 projects the skip
    wd = build_wide_deep(5, 2, "single_label", hidden=(8,))
    assert wd.get_layer("wide_and_deep").output.shape[-1] == 5 + 8


def test_penalty_is_rate_times_sum_of_squares():
    m = build_mlp(6, 3, "single_label", hidden=(5,), l1=0.01, l2=0.1)
    kernels = [layer.kernel.numpy() for layer in kernel_layers(m)]
    expected = sum(0.01 * np.abs(k).sum() + 0.1 * np.square(k).sum() for k in kernels)
    assert float(sum(m.losses)) == pytest.approx(expected, rel=1e-5)


def test_per_layer_rates():
    m = build_mlp(6, 3, "single_label", hidden=(5, 4), l2=(0.1, 0.0, 0.2))
    assert m.get_layer("hidden_2").kernel_regularizer is None
    assert m.get_layer("output").kernel_regularizer.get_config()["l2"] == pytest.approx(0.2)


def test_kernel_regularizer_kinds():
    assert kernel_regularizer() is None
    assert type(kernel_regularizer(l1=0.1)).__name__ == "L1"
    assert type(kernel_regularizer(l2=0.1)).__name__ == "L2"
    assert type(kernel_regularizer(l1=0.1, l2=0.1)).__name__ == "L1L2"
    with pytest.raises(ValueError, match="Received: l2=-1"):
        kernel_regularizer(l2=-1)


def test_apply_regularization_to_existing_model_trains_with_the_penalty():
    m = build_mlp(6, 3, "single_label", hidden=(5,))
    assert not m.losses
    apply_regularization(m, l2=0.5)
    kernels = [layer.kernel.numpy() for layer in kernel_layers(m)]
    assert float(sum(m.losses)) == pytest.approx(0.5 * sum(np.square(k).sum() for k in kernels), rel=1e-5)
    compile_model(m, "single_label", TrainingSpec())
    x, y = np.random.default_rng(0).normal(size=(32, 6)).astype("float32"), np.zeros(32, "int32")
    logs = m.evaluate(x, y, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(logs["data_loss"] + float(sum(m.losses)), rel=1e-4)


def test_freeze_strategies():
    m = build_mlp(4, 2, "single_label", hidden=(8, 8, 8))
    trainable = lambda: [layer.trainable for layer in kernel_layers(m)]  # noqa: E731
    assert trainable() == [True] * 4
    assert freeze(m, "all_but_last") and trainable() == [False, False, False, True]
    assert freeze(m, "most") and trainable() == [False, False, True, True]
    assert freeze(m, 3) and trainable() == [False, True, True, True]
    assert freeze(m, "none") and trainable() == [True] * 4
    with pytest.raises(ValueError, match="Received: freeze='some'"):
        freeze(m, "some")
    assert [freeze_strategy_for(n) for n in (50, 500, 5000)] == ["all_but_last", "most", "none"]


def test_transfer_model_from_saved_base(tmp_path):
    base = build_mlp(4, 3, "single_label", hidden=(8, 6))
    base.save(tmp_path / "base.keras")
    loaded = load_base_model(tmp_path / "base.keras")
    np.testing.assert_array_equal(loaded.get_layer("hidden_1").kernel.numpy(),
                                  base.get_layer("hidden_1").kernel.numpy())
    new = transfer_model(loaded, 2, "binary" if False else "single_label", freeze_strategy="all_but_last")
    assert new.output_shape == (None, 2)
    assert [layer.trainable for layer in kernel_layers(new)] == [False, False, True]
    assert len(new.trainable_weights) == 2  # only the new head's kernel and bias


def test_user_builder_errors():
    with pytest.raises(ValueError, match=r"model\.builder.*cannot import"):
        user_builder("no_such_module_xyz:build")
    with pytest.raises(ValueError, match="has no function"):
        user_builder("tests.builders:nope")
    assert callable(user_builder("tests.builders:small"))


def test_transfer_builder_from_a_spec(tmp_path):
    from mlreg.data import load
    from mlreg.models import build_model
    from mlreg.spec import ExperimentSpec, SpecError
    from tests.conftest import tiny_spec_dict

    build_mlp(64, 5, "single_label", hidden=(16, 8)).save(tmp_path / "base.keras")
    spec = ExperimentSpec.from_dict(tiny_spec_dict(
        model={"builder": "transfer", "base_model": str(tmp_path / "base.keras"), "l2": 1e-3},
        grid={"freeze": ["all_but_last", "most", "none"]}))
    runs = spec.expand()
    data = load(runs[0].data)
    trainable = [[layer.trainable for layer in kernel_layers(build_model(r, data))] for r in runs]
    assert trainable == [[False, False, True], [False, True, True], [True, True, True]]
    assert build_model(runs[0], data).output_shape == (None, 10)
    assert float(sum(build_model(runs[0], data).losses)) > 0  # the rate reaches the base's layers too
    with pytest.raises(SpecError, match="needs `model.base_model`"):
        ExperimentSpec.from_dict(tiny_spec_dict(model={"builder": "transfer"}))
    with pytest.raises(SpecError, match="freeze"):
        ExperimentSpec.from_dict(tiny_spec_dict(model={"freeze": 0}))


# -- the convolutional builder and shapes (issue 15) ----------------------------------------------
def test_cnn_is_the_mnist1d_papers_cnn_by_default_and_conv2d_on_images():
    from mlreg.models import build_cnn

    m = build_cnn((40, 1), 10, "single_label")
    assert [type(layer).__name__ for layer in m.layers] == ["InputLayer", "Conv1D", "Conv1D", "Conv1D", "Flatten",
                                                             "Dense"]
    assert m.get_layer("flatten").output.shape[-1] == 125  # 40 -> 20 -> 10 -> 5 steps x 25 filters, as the paper's
    assert m.count_params() == (5 * 25 + 25) + 2 * (3 * 25 * 25 + 25) + (125 * 10 + 10)
    img = build_cnn((8, 8, 1), 3, "single_label", filters=(4, 8), kernel_size=3, strides=1, pool=2, dropout=0.2,
                    l2=(0.1, 0.0, 0.2))
    assert [type(layer).__name__ for layer in img.layers][1:4] == ["Conv2D", "MaxPooling2D", "Dropout"]
    assert img.get_layer("conv_2").kernel_regularizer is None
    assert img.get_layer("conv_1").kernel_regularizer.get_config()["l2"] == pytest.approx(0.1)
    assert [layer.name for layer in kernel_layers(img)] == ["conv_1", "conv_2", "output"]  # statistics cover convs
    assert img(np.zeros((2, 8, 8, 1), "float32")).shape == (2, 3)


def test_cnn_refuses_flat_data_pointing_at_shape():
    from mlreg.models import build_cnn
    from mlreg.spec import InputError

    with pytest.raises(InputError, match=r"data\.shape.*shape = \[64, 1\]"):
        build_cnn(64, 10, "single_label")


def test_dense_builders_flatten_images():
    m = build_mlp((8, 8, 1), 10, "single_label", hidden=(16,))
    assert m.layers[0].name == "flatten" and m(np.zeros((2, 8, 8, 1), "float32")).shape == (2, 10)
    assert build_wide_deep((4, 2), 1, "binary", hidden=(3,)).get_layer("wide_and_deep").output.shape[-1] == 8 + 3


def test_per_layer_rates_are_counted_per_builder():
    from mlreg.spec import ExperimentSpec, SpecError

    ExperimentSpec.from_dict({"name": "e", "model": {"builder": "cnn", "l2": [0.1, 0, 0, 0]}})
    with pytest.raises(SpecError, match="one rate per convolution block plus one for the output \\(4\\); got 3"):
        ExperimentSpec.from_dict({"name": "e", "model": {"builder": "cnn", "l2": [0.1, 0, 0]}})
    with pytest.raises(SpecError, match="one value per convolution block"):
        ExperimentSpec.from_dict({"name": "e", "model": {"builder": "cnn", "kernel_size": [3, 3]}})


def test_the_python_api_starts_as_quietly_as_the_command_line(tmp_path):
    """A script that builds, saves and loads a model through mlreg's API prints nothing on stderr
    (TensorFlow's C++ start-up lines included, which Keras's lazy import of TensorFlow on JAX used
    to print twice), and trains on mlreg's default backend as `mlreg run` does."""
    script = tmp_path / "script.py"
    script.write_text(
        "import mlreg\n"
        f"model = mlreg.build_mlp(64, 10, 'single_label', hidden=(8,), l2=1e-3)\n"
        f"model.save({str(tmp_path / 'base.keras')!r})\n"
        f"base = mlreg.load_base_model({str(tmp_path / 'base.keras')!r})\n"
        "import keras\nprint(keras.backend.backend())\n")
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL")}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert out.stdout.strip() == "jax"
