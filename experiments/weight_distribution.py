"""Claim 12: "with a high rate the weights are normally distributed, with a low rate evenly;
with L2 they are close to 0 but not 0".

Reads the final kernels' histograms that `l2_rate` recorded (weights.csv: fixed bins of 0.01
on [-1, 1]) and measures, per run, the shape of the middle layer's weights (hidden_2, 128 x
128, the layer farthest from the data's and the head's peculiarities): excess kurtosis (0 for
a normal, -1.2 for a uniform), the Wasserstein distance to the normal and to the uniform of
the same mean and standard deviation (in standard deviations), and the standard deviation.
The same for Keras's initial weights (Glorot-uniform, drawn here for the same layer) says what
the initialisation contributes.
Writes results/weight_distribution/shape.csv and a plot.

    python experiments/weight_distribution.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

import mlreg

OUT = Path("results/weight_distribution")
LAYER = "hidden_2"


def shape(centers: np.ndarray, counts: np.ndarray) -> dict[str, float]:
    """Shape statistics of a binned distribution (weights at their bin centres)."""
    w = counts / counts.sum()
    mean = float((w * centers).sum())
    sd = float(np.sqrt((w * (centers - mean) ** 2).sum()))
    z = (centers - mean) / sd
    kurtosis = float((w * z**4).sum() - 3)
    cdf = np.cumsum(w)
    grid_step = np.diff(centers, prepend=centers[0]) / sd
    normal = stats.norm.cdf(z)
    uniform = np.clip((z + np.sqrt(3)) / (2 * np.sqrt(3)), 0, 1)
    return {"sd": sd, "excess_kurtosis": kurtosis,
            "w1_to_normal": float(np.sum(np.abs(cdf - normal) * grid_step)),
            "w1_to_uniform": float(np.sum(np.abs(cdf - uniform) * grid_step))}


def initial(seed: int, n_in: int = 128, n_out: int = 128) -> dict[str, float]:
    """The same statistics of Keras's Glorot-uniform initial kernel, binned the same way."""
    import keras

    from mlreg.records import HIST_EDGES

    kernel = np.asarray(keras.initializers.GlorotUniform(seed=seed)((n_in, n_out)))
    counts, _ = np.histogram(kernel, bins=HIST_EDGES)
    centers = (HIST_EDGES[1:-2] + HIST_EDGES[2:-1]) / 2
    return shape(centers, counts[1:-1])


def main() -> None:
    res = mlreg.load_results("results/l2_rate")
    w = res.weights[(res.weights["layer"] == LAYER) & np.isfinite(res.weights["bin_left"])
                    & np.isfinite(res.weights["bin_right"])]
    rows = []
    for run_id, part in w.groupby("run_id"):
        centers = ((part["bin_left"] + part["bin_right"]) / 2).to_numpy()
        rows.append({"run_id": run_id, **shape(centers, part["count"].to_numpy(dtype=float))})
    table = pd.DataFrame(rows).merge(res.runs[["run_id", "l2", "seed"]], on="run_id")
    init = pd.DataFrame([initial(seed) for seed in range(10)]).assign(l2="initial")
    OUT.mkdir(parents=True, exist_ok=True)
    table.to_csv(OUT / "shape.csv", index=False)
    cols = ["sd", "excess_kurtosis", "w1_to_normal", "w1_to_uniform"]
    summary = pd.concat([init.groupby("l2")[cols].mean(), table.groupby("l2")[cols].mean()])
    summary.to_csv(OUT / "summary.csv")
    print(summary.to_string(float_format=lambda v: f"{v:.4g}"))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    mlreg.plots.weight_histograms(res, layer=LAYER, ax=axes[0])
    rates = table.groupby("l2")[["excess_kurtosis", "w1_to_normal", "w1_to_uniform"]].mean()
    x = rates.index.to_numpy()
    for col, style in (("w1_to_normal", "o-"), ("w1_to_uniform", "s--")):
        axes[1].plot(x, rates[col], style, label=col.replace("w1_to_", "distance to the "))
    for col, style in (("w1_to_normal", ":"), ("w1_to_uniform", "-.")):
        axes[1].axhline(init[col].mean(), color="grey", ls=style, lw=0.8)
    mlreg.plots.set_param_scale(axes[1], x)
    axes[1].set_xlim(left=-0.2 * min(v for v in x if v > 0))  # no negative rates on the axis
    axes[1].set_xlabel("l2")
    axes[1].set_ylabel("Wasserstein distance (standard deviations)")
    axes[1].set_title(f"Shape of the {LAYER} weights (grey: the initial weights)", fontsize="medium")
    axes[1].legend(fontsize="small")
    fig.savefig(OUT / "shape.png", dpi=110)


if __name__ == "__main__":
    main()
