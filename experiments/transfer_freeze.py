"""Claim: when fine-tuning a pretrained network, freeze most of it with little data and
train everything with more.

Pretrains an MLP on digits 0-4, then fine-tunes it on digits 5-9 with the freeze strategies
`all_but_last`, `most` and `none` (and, as a reference, a fresh MLP of the same shape)
across target training-set sizes. Two trainings chained, so this is a script on the
Python API; the fine-tuning sweep is an ordinary mlreg experiment, written to
results/transfer_freeze/ like the others.

    python experiments/transfer_freeze.py [--epochs N] [--fresh]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits

import mlreg
from mlreg.spec import DataSpec, TrainingSpec

WORK = Path("build/transfer_freeze")  # inputs: split CSVs and the pretrained model (not committed)
HIDDEN = [128, 64]


def write_task_csvs() -> tuple[Path, Path]:
    x, y = load_digits(return_X_y=True)
    paths = []
    for name, digits in (("source_0_4", range(5)), ("target_5_9", range(5, 10))):
        keep = np.isin(y, digits)
        # one fixed preprocessing for both tasks (pixels / 16), so that the pretrained layers see
        # target inputs on the scale they were trained on; mlreg's per-training-set
        # standardisation is turned off (data.scale = false)
        frame = pd.DataFrame(x[keep] / 16.0, columns=[f"px{i}" for i in range(x.shape[1])])
        frame["digit"] = y[keep] - min(digits)
        path = WORK / f"{name}.csv"
        frame.to_csv(path, index=False)
        paths.append(path)
    return paths[0], paths[1]


def pretrain(source: Path, epochs: int) -> Path:
    import keras

    data = mlreg.load_data(DataSpec(path=str(source), target="digit", scale=False))
    keras.utils.set_random_seed(0)
    model = mlreg.build_mlp(data.n_features, data.n_outputs, data.task, hidden=HIDDEN)
    mlreg.compile_model(model, data.task, TrainingSpec(learning_rate=1e-3))
    stop = keras.callbacks.EarlyStopping(monitor="val_data_loss", patience=10, restore_best_weights=True)
    model.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val), epochs=epochs,
              batch_size=32, verbose=0, callbacks=[stop])
    acc = model.evaluate(data.x_val, data.y_val, verbose=0, return_dict=True)["accuracy"]
    print(f"pretrained on digits 0-4: validation accuracy {acc:.3f}")
    path = WORK / "base.keras"
    model.save(path)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--fresh", action="store_true", help="start the results directory anew")
    args = p.parse_args()

    from mlreg.engines import import_tensorflow

    import_tensorflow()
    WORK.mkdir(parents=True, exist_ok=True)
    source, target = write_task_csvs()
    base = pretrain(source, args.epochs)
    spec = mlreg.ExperimentSpec.from_dict({
        "name": "transfer_freeze",
        "description": "pretrained on digits 0-4 (MLP 128x64), fine-tuned on digits 5-9",
        "seeds": 3,
        "data": {"path": str(target), "target": "digit", "scale": False},
        "model": {"hidden": HIDDEN, "base_model": str(base)},
        "training": {"epochs": args.epochs},
        "early_stopping": {"patience": 15},
        "variants": [
            {"name": "all_but_last", "builder": "transfer", "freeze": "all_but_last"},
            {"name": "most", "builder": "transfer", "freeze": "most"},
            {"name": "none", "builder": "transfer", "freeze": "none"},
            {"name": "from scratch", "builder": "mlp"},
        ],
        "grid": {"train_size": [10, 30, 100, 600]},
    })
    print(mlreg.run(spec, fresh=args.fresh))
    print(mlreg.compare(mlreg.load_results("results/transfer_freeze")).to_string(index=False))


if __name__ == "__main__":
    main()
