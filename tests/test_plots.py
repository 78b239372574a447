from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from mlreg.analysis import plots
from mlreg.analysis.results import load_results
from tests.conftest import make_results


@pytest.fixture
def res(tmp_path):
    return load_results(make_results(tmp_path / "l2", {0.0: [0.5, 0.52], 1e-3: [0.4, 0.42], 1e-1: [0.6, 0.61]}))


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_loss_curves(res):
    ax = plots.loss_curves(res)
    solid = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-" and ln.get_marker() in ("None", "")]
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    markers = [ln for ln in ax.get_lines() if ln.get_marker() == "o"]
    assert len(solid) == len(dashed) == len(markers) == 3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["0", "0.001", "0.1", "validation (band: ±1 std)",
                                                                    "training", "best epoch (median)"]
    assert ax.get_xlabel() == "epoch" and ax.get_yscale() == "log"
    ax.figure.canvas.draw()
    assert all(float(t).is_integer() for t in ax.get_xticks())  # epochs are whole
    # the best-epoch marker sits at epoch 2 on the mean validation curve
    assert markers[0].get_xdata()[0] == 2


def test_colors_are_the_same_in_every_plot(res):
    from matplotlib.colors import to_rgba

    def colors(ax):
        return [to_rgba(h.get_color()) for h in ax.get_legend().legend_handles]

    curves, hists = colors(plots.loss_curves(res))[:3], colors(plots.weight_histograms(res))
    assert curves == hists and len(set(curves)) == 3


def test_validation_curve_symlog_with_zero_and_train_line(res):
    ax = plots.validation_curve(res, param="l2")
    assert ax.get_xscale() == "symlog"
    lines = [ln for ln in ax.get_lines()]
    assert [ln.get_label() for ln in lines] == ["validation", "training"]
    assert list(lines[0].get_xdata()) == [0.0, 1e-3, 1e-1]
    assert list(lines[0].get_ydata()) == pytest.approx([0.51, 0.41, 0.605])
    assert lines[1].get_linestyle() == "--"


def test_log_scale_without_zero_and_linear_for_a_small_span(tmp_path):
    res = load_results(make_results(tmp_path / "a", {1e-4: [0.5], 1e-2: [0.4]}))
    assert plots.validation_curve(res, param="l2").get_xscale() == "log"
    res = load_results(make_results(tmp_path / "b", {0.2: [0.5], 0.5: [0.4]}, param="dropout"))
    assert plots.validation_curve(res, param="dropout").get_xscale() == "linear"


def test_two_swept_parameters_give_one_line_per_value(tmp_path):
    from mlreg.analysis.results import load_results
    from mlreg.records import RunResult, columns
    from mlreg.store import ResultsStore

    with ResultsStore.open(tmp_path / "r", spec_toml="x", manifest={"swept": ["train_size", "l2"]},
                           columns=columns("single_label", ["train_size", "l2"])) as store:
        for n in (100, 1000):
            for l2 in (0.0, 0.01, 0.1):
                store.append(RunResult(f"{n}-{l2}", "ok", {"run_id": f"{n}-{l2}", "status": "ok", "seed": 0,
                                                           "train_size": n, "l2": l2, "best_val_data_loss": 1 / n + l2,
                                                           "train_data_loss_at_best": l2, "gap": 1 / n}))
    ax = plots.validation_curve(load_results(tmp_path / "r"), param="l2")
    lines = ax.get_lines()
    assert len(lines) == 4 and [ln.get_linestyle() for ln in lines] == ["-", "--", "-", "--"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "train_size=100", "train_size=1000", "band: ±1 std over seeds (within their range)", "dots: one run each"]
    assert lines[0].get_color() == lines[1].get_color() != lines[2].get_color() == lines[3].get_color()


def test_gap_weights_sparsity_stopping(res):
    ax = plots.generalization_gap(res, param="l2")
    assert list(ax.get_lines()[0].get_ydata()) == pytest.approx([0.1] * 3)
    ax = plots.weight_histograms(res)
    assert len(ax.patches) == 3 and ax.get_yscale() == "log"
    ax = plots.weight_stat(res, param="l2", stat="sparsity")
    assert list(ax.get_lines()[0].get_ydata()) == pytest.approx([0.0, 1e-3, 0.1])
    ax = plots.stopping_epoch(res, param="l2")
    assert ax.get_ylim()[0] == 0 and "epochs" in ax.get_ylabel()


def test_categorical_parameter(tmp_path):
    from mlreg.records import RunResult, columns
    from mlreg.store import ResultsStore

    with ResultsStore.open(tmp_path / "r", spec_toml="x", manifest={"swept": ["variant"]},
                           columns=columns("single_label", ["variant"])) as store:
        for i, v in enumerate(["L2", "Dropout", "L2+Dropout"]):
            store.append(RunResult(v, "ok", {"run_id": v, "status": "ok", "seed": 0, "variant": v,
                                             "best_val_data_loss": 0.3 + i / 10, "gap": 0.1}))
    ax = plots.validation_curve(load_results(tmp_path / "r"), param="variant")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["L2", "Dropout", "L2+Dropout"]


def test_figures_for_the_cli(res):
    figs = plots.figures(res)
    assert set(figs) == {"loss_curves", "validation_curve_l2", "gap_l2", "weight_histograms",
                         "sparsity_l2", "weight_l2_l2", "stopping_epoch_l2"}
    with pytest.raises(ValueError, match="Received: kind="):
        plots.figures(res, ["pie"])


def test_plots_and_report_of_runs_that_all_failed(tmp_path):
    """Issue 8.1: `plot` raised IndexError when no run was ok."""
    from mlreg.analysis.report import render

    res = load_results(make_results(tmp_path / "r", {0.0: [0.5], 0.1: [0.6]},
                                    statuses={(0.0, 0): "failed", (0.1, 0): "diverged"}))
    figs = plots.figures(res)
    assert "loss_curves" in figs and "validation_curve_l2" in figs
    assert "no ok runs" in render(res)


def test_a_swept_boolean_is_a_category_and_narrow_log_axes_read_plainly(tmp_path):
    """Issue 8.16."""
    from mlreg.records import RunResult, columns
    from mlreg.store import ResultsStore

    with ResultsStore.open(tmp_path / "r", spec_toml="x", manifest={"swept": ["early_stopping"]},
                           columns=columns("single_label", ["early_stopping"])) as store:
        for i, enabled in enumerate([True, False, True, False]):
            store.append(RunResult(f"r{i}", "ok", {"run_id": f"r{i}", "status": "ok", "seed": i // 2,
                                                   "early_stopping": enabled, "best_val_data_loss": 0.15 + i / 100,
                                                   "train_data_loss_at_best": 0.18 + i / 100, "gap": 0.01}))
    ax = plots.validation_curve(load_results(tmp_path / "r"), param="early_stopping")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["True", "False"]
    ax.figure.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels() + ax.get_yticklabels(minor=True) if t.get_text()]
    assert labels and all("times" not in t and "^" not in t for t in labels)  # 0.16, not 1.6x10^-1


def test_several_directories_keep_each_best_setting_and_leave_out_missing_parameters(tmp_path):
    many = load_results(make_results(tmp_path / "many", {v / 100: [0.5 + abs(v - 7) / 100] for v in range(15)}))
    other = load_results(make_results(tmp_path / "other", {0.2: [0.9], 0.9: [0.8]}, param="dropout"))
    ax = plots.loss_curves([many, other])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "many, l2=0.07" in labels and "other, dropout=0.9" in labels  # each directory's best
    assert not any("nan" in label for label in labels)
    ax = plots.validation_curve([many, other], param="dropout")
    assert len(ax.collections[-1].get_offsets()) == 2  # only the runs that have a dropout


# -- issue 17: imported runs, axes, a user's own figure -------------------------------------------
@pytest.fixture
def imported(tmp_path):
    """Runs imported from Keras's CSVLogger files: no honest columns, no weights."""
    import pandas as pd

    from mlreg.recorder import import_csv_logs

    for l2 in (0.0, 0.01):
        for seed in (0, 1):
            pd.DataFrame({"epoch": range(5), "loss": [1.0, 0.8, 0.6, 0.5, 0.45], "accuracy": [0.5, 0.6, 0.7, 0.8, 0.85],
                          "val_loss": [1.1, 0.9, 0.8 + l2, 0.85, 0.9], "val_accuracy": [0.5, 0.6, 0.7 - l2, 0.68, 0.66]}
                         ).to_csv(tmp_path / f"run_l2={l2}_seed={seed}.csv", index=False)
    import_csv_logs(sorted(tmp_path.glob("run_*.csv")), tmp_path / "imported", pattern="run_l2={l2}_seed={seed}.csv")
    return load_results(tmp_path / "imported")


def test_imported_runs_are_drawn_with_the_columns_they_have(imported, capsys):
    """Issue 17.10: report and loss curves failed on all-NA columns, validation curves could not be
    log-scaled, gap, sparsity and weights drew empty plots, compare said 'no ok runs'."""
    from mlreg.analysis.compare import compare, format_table
    from mlreg.analysis.report import render
    from mlreg.cli import main

    table = compare(imported)
    assert table.attrs["metric"] == "val_accuracy_at_best" and list(table.n) == [2, 2]
    text = format_table(table)
    assert "mean val_accuracy_at_best" in text and "no ok runs" not in text and "ranked by val_accuracy_at_best" in text
    figs = plots.figures(imported)
    assert set(figs) == {"loss_curves", "validation_curve_l2", "stopping_epoch_l2"}
    assert figs["loss_curves"].axes[0].get_ylabel() == "loss as Keras reports it (with the penalty)"
    assert len(figs["validation_curve_l2"].axes[0].get_lines()) >= 1
    assert "val_accuracy_at_best" in render(imported)
    for argv in (["compare", str(imported.root)], ["plot", str(imported.root)], ["report", str(imported.root)]):
        assert main(argv) == 0, argv
    assert "ranked by val_accuracy_at_best" in capsys.readouterr().out


def test_zero_and_rates_a_decade_apart_get_a_symlog_axis(tmp_path):
    """Issue 17.14: l2 = [0, 1e-3, 1e-2] got a linear axis, so 0 and 1e-3 overlapped."""
    res = load_results(make_results(tmp_path / "a", {0.0: [0.5], 1e-3: [0.4], 1e-2: [0.45]}))
    assert plots.validation_curve(res, param="l2").get_xscale() == "symlog"
    res = load_results(make_results(tmp_path / "b", {0.0: [0.5], 0.2: [0.4], 0.5: [0.45]}, param="dropout"))
    assert plots.validation_curve(res, param="dropout").get_xscale() == "linear"


def test_plots_in_a_users_own_figure_keep_legends_inside_and_titles_short(res):
    """Issue 17.15: legends placed outside each axes overlapped the next; long titles ran together."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), layout="constrained")
    plots.loss_curves(res, ax=axes[0])
    plots.validation_curve(res, param="l2", ax=axes[1], lw=3)
    plots.generalization_gap(res, param="l2", ax=axes[2], legend=False)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in axes[:2]:
        box, frame = ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer)
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1, ax.get_title()
    assert axes[2].get_legend() is None
    assert all(len(ax.get_title()) <= 55 for ax in axes), [ax.get_title() for ax in axes]
    assert axes[1].get_lines()[0].get_linewidth() == 3  # **line_kw reaches the lines
    assert axes[1].get_xlabel() == "l2"  # a parameter keeps its one name


def test_the_plots_module_shows_only_what_it_offers():
    names = dir(plots)
    assert "validation_curve" in names and not {"np", "dataclass", "Any", "annotations"} & set(names)


def test_the_mean_loss_curve_ends_where_half_the_runs_have_stopped(tmp_path):
    """Early-stopped runs leave the mean: drawn on, it would jump when a few long runs are left. The
    mean is drawn only while at least half of a setting's runs still train: here 4 runs stop after
    2, 4, 4 and 10 epochs, so it ends at epoch 4."""
    from mlreg.records import RunResult, columns
    from mlreg.store import ResultsStore

    with ResultsStore.open(tmp_path / "r", spec_toml="x", manifest={"swept": ["l2"]},
                           columns=columns("single_label", ["l2"])) as store:
        for seed, epochs in enumerate((2, 4, 4, 10)):
            run_id = f"s{seed}"
            history = [{"run_id": run_id, "epoch": e, "val_data_loss": 1.0 / e + (0.5 if seed > 1 else 0),
                        "train_data_loss": 0.5 / e} for e in range(1, epochs + 1)]
            store.append(RunResult(run_id, "ok", {"seed": seed, "l2": 0.0, "best_epoch": epochs,
                                                  "best_val_data_loss": history[-1]["val_data_loss"]}, history))
    ax = plots.loss_curves(load_results(tmp_path / "r"))
    validation = next(ln for ln in ax.get_lines() if ln.get_linestyle() == "-" and ln.get_marker() in ("None", ""))
    assert list(validation.get_xdata()) == [1, 2, 3, 4]


def test_the_validation_curves_legend_says_what_the_band_and_the_dots_are(res):
    texts = [t.get_text() for t in plots.validation_curve(res, param="l2").get_legend().get_texts()]
    assert texts == ["validation", "training", "band: ±1 std over seeds (within their range)", "dots: one run each"]
