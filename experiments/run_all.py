"""Re-runs every experiment and redraws its plots: `make experiments`.

Each experiment resumes: runs already in results/<name>/ are skipped, so an interrupted
`make experiments` picks up where it stopped. Pass --fresh to retrain everything (the old
results are moved aside, never deleted). Pass names to run some of them. The experiment files
train and plot in this one process (`mlreg.cli.main`), so Keras, its backend and matplotlib are
imported once; the scripts run as their own processes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from mlreg import cli

HERE = Path(__file__).parent
EXPERIMENTS = ["l2_rate", "l1_vs_l2", "dropout_rate", "early_stopping", "data_size", "lr_vs_l2", "model_size",
               "functional_residual", "shift", "shift_dropout", "mnist1d", "mnist1d_l2", "mnist1d_dropout",
               "mnist1d_data_size", "cnn_l2", "cnn_dropout", "cnn_early_stopping", "l2_rate_search", "cnn_kinds",
               "mnist1d_kinds", "adam_l2_vs_decay", "adamw_data_size", "adamw_batch_size", "mnist1d_lr_vs_l2",
               "extrapolate_digits", "extrapolate_digits_halving", "extrapolate_mnist1d", "extrapolate_adamw",
               "extrapolate_cnn"]
SCRIPTS = {"weight_distribution": [], "cross_validation": ["cv_one_split", "cv_kfold"],
           "transfer_freeze": ["transfer_freeze"], "own_script": ["own_script"]}  # script -> its results directories


def sh(*args: str) -> None:
    print("$", " ".join(args), flush=True)
    subprocess.run(args, check=True)


def mlreg(*args: str) -> None:
    print("$ mlreg", " ".join(args), flush=True)
    code = cli.main(args)
    if code:
        sys.exit(code)


def main() -> None:
    fresh = ["--fresh"] if "--fresh" in sys.argv else []
    only = [a for a in sys.argv[1:] if not a.startswith("--")] or [*EXPERIMENTS, *SCRIPTS]
    started = time.perf_counter()
    for name in only:
        t0 = time.perf_counter()
        if name in SCRIPTS:
            sh(sys.executable, str(HERE / f"{name}.py"), *(fresh if name != "weight_distribution" else []))
            dirs = SCRIPTS[name]
        else:
            mlreg("run", str(HERE / f"{name}.toml"), "--quiet", *fresh)
            dirs = [name]
        for d in dirs:
            mlreg("plot", f"results/{d}")
        print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"all: {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
