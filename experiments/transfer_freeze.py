"""Claims 9, 13 and 15: when fine-tuning a pretrained network, freeze most of it with little
data and train everything with more; and transfer learning needs 1 to 5 epochs where
training from scratch needs more than 10.

A fair test needs a large source task that is related to the target: MNIST-1D from one
generator setting (40,000 samples, the package's defaults), and a target from a shifted
setting (more translation, shear and noise; 5,000 samples, a few of them used for training).
An MLP (256-128) is pretrained on the source with Keras; the fine-tuning sweep — freeze
strategies `all_but_last`, `most`, `none`, and a fresh MLP of the same shape — over target
training-set sizes is an ordinary mlreg experiment, written to results/transfer_freeze/, and
trained in two worker processes (the transfer builder trains with the keras engine, whose
per-step overhead is Python's: two processes halve it on two cores).

    python experiments/transfer_freeze.py [--fresh]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import mlreg
from mlreg.datasets import mnist1d
from mlreg.spec import DataSpec, TrainingSpec

WORK = Path("build/transfer_freeze")  # inputs: the generated data and the pretrained model (not committed)
HIDDEN = [256, 128]
SHIFTED = {"max_translation": 60, "corr_noise_scale": 0.5, "iid_noise_scale": 4e-2, "shear_scale": 1.0, "seed": 7}


def generate(name: str, n_samples: int, **changes: object) -> Path:
    """An MNIST-1D data set from the `mnist1d` generator, as an NPZ file with its own test split."""
    d = mnist1d(n_samples, **changes)
    path = WORK / f"{name}.npz"
    np.savez(path, x=d.x, y=d.y, x_test=d.x_test, y_test=d.y_test)
    return path


def pretrain(source: Path) -> Path:
    import keras

    path = WORK / "base.keras"
    if path.exists():
        return path
    # MNIST-1D comes standardised by its generator: both tasks keep that one preprocessing
    data = mlreg.load_data(DataSpec(path=str(source), target="y", scale=False, val_size=0.1))
    keras.utils.set_random_seed(0)
    model = mlreg.build_mlp(data.n_features, data.n_outputs, data.task, hidden=HIDDEN)
    mlreg.compile_model(model, data.task, TrainingSpec(learning_rate=1e-3))
    stop = keras.callbacks.EarlyStopping(monitor="val_data_loss", patience=10, restore_best_weights=True)
    model.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val), epochs=200,
              batch_size=100, verbose=0, callbacks=[stop])
    acc = model.evaluate(data.x_test, data.y_test, verbose=0, return_dict=True)["accuracy"]
    print(f"pretrained on the source task: test accuracy {acc:.3f}")
    model.save(path)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fresh", action="store_true", help="start the results directory anew")
    args = p.parse_args()

    from mlreg.backend import import_keras

    import_keras()
    WORK.mkdir(parents=True, exist_ok=True)
    source = generate("source", 40000)
    target = generate("target", 5000, **SHIFTED)
    base = pretrain(source)
    spec = mlreg.ExperimentSpec.from_dict({
        "name": "transfer_freeze",
        "description": "MLP 256-128 pretrained on 32,000 MNIST-1D samples, fine-tuned on a shifted MNIST-1D",
        "seeds": 10,
        "data": {"path": str(target), "target": "y", "scale": False},
        "model": {"hidden": HIDDEN, "base_model": str(base)},
        "training": {"epochs": 200},
        "early_stopping": {"patience": 10},
        "variants": [
            {"name": "all_but_last", "builder": "transfer", "freeze": "all_but_last"},
            {"name": "most", "builder": "transfer", "freeze": "most"},
            {"name": "none", "builder": "transfer", "freeze": "none"},
            {"name": "from scratch", "builder": "mlp"},
        ],
        "grid": {"train_size": [30, 100, 1000]},
    })
    print(mlreg.run(spec, fresh=args.fresh, workers=2, progress=False))
    print(mlreg.compare(mlreg.load_results("results/transfer_freeze"), metric="test_accuracy").to_string(index=False))


if __name__ == "__main__":
    main()
