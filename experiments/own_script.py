"""Your own training loop, recorded by mlreg: a plain loop over L2 rates with `model.fit`.

Nothing here is mlreg's but two lines: a `HonestLogger` in the callbacks (the honest columns
in Keras's logs, so `EarlyStopping` can watch `val_data_loss`) and a `Recorder` that writes
each run to results/own_script/. Then `mlreg compare results/own_script --baseline l2=0`,
`mlreg plot` and `mlreg report` work on it as on any sweep; running the script again trains
only what is missing.

    python experiments/own_script.py [--fresh]
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")  # as mlreg's default: a model.fit loop runs 2-3x faster here than on TF
import keras  # noqa: E402 - after the backend is chosen

import mlreg  # noqa: E402
from mlreg.data import load  # noqa: E402
from mlreg.spec import DataSpec  # noqa: E402


def build(l2: float) -> keras.Model:
    reg = keras.regularizers.L2(l2) if l2 else None
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(64, activation="relu", kernel_regularizer=reg),
        keras.layers.Dense(64, activation="relu", kernel_regularizer=reg),
        keras.layers.Dense(10, activation="softmax", kernel_regularizer=reg),
    ])
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main() -> None:
    data = load(DataSpec(dataset="digits", train_size=500, test_size=0.2))  # or your own arrays
    with mlreg.Recorder("results/own_script", params=["l2"], task="single_label", test=True,
                        fresh="--fresh" in sys.argv, description="a user's loop over L2 rates with model.fit") as rec:
        for l2 in (0.0, 1e-4, 1e-3, 1e-2):
            for seed in range(3):
                if rec.done(seed=seed, l2=l2):
                    continue
                keras.utils.set_random_seed(seed)
                model = build(l2)
                logger = mlreg.HonestLogger(data.x_train, data.y_train)
                stop = keras.callbacks.EarlyStopping(monitor="val_data_loss", mode="min", patience=10,
                                                     restore_best_weights=True)
                model.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val), epochs=150,
                          batch_size=32, verbose=0, callbacks=[logger, stop])
                rec.record(model, logger, seed=seed, l2=l2, stopper=stop, test=(data.x_test, data.y_test))
    print(mlreg.compare(mlreg.load_results("results/own_script"), baseline="l2=0").to_string(index=False))


if __name__ == "__main__":
    main()
