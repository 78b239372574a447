"""Which kind? (`mlreg compare --kinds`, the report's sentence, the `kinds` plot) on results
written by hand, where the answer is known."""

from __future__ import annotations

import statistics

import matplotlib
import pytest

from mlreg.analysis.kinds import format_kinds, kinds
from mlreg.analysis.results import load_results
from mlreg.records import RunResult, columns
from mlreg.spec import InputError
from mlreg.store import ResultsStore

SEEDS = 6


def _results(root, losses, names=("l2", "dropout")):
    """`losses[(l2, dropout)] = base loss` (or of the two kinds `names`); seed s adds 0.01 * s (so
    settings pair cleanly) and a little noise of its own."""
    a, b = names
    cols = columns("single_label", list(names))
    store = ResultsStore.open(root, spec_toml="name = 'k'\n", columns=cols,
                              manifest={"experiment": "k", "swept": list(names), "description": ""})
    with store:
        for (l2, dropout), loss in losses.items():
            for seed in range(SEEDS):
                value = loss + 0.01 * seed + 0.001 * ((seed * 7 + int(l2 * 1e4) + int(dropout * 10)) % 3)
                run_id = f"l2{l2}-d{dropout}-s{seed}"
                store.append(RunResult(run_id, "ok", {"run_id": run_id, "seed": seed, a: l2, b: dropout,
                                                      "best_val_data_loss": value, "val_accuracy_at_best": 1 - value,
                                                      "best_epoch": 5, "gap": 0.1,
                                                      "epochs_run": 8},
                                       [{"run_id": run_id, "epoch": 1, "val_data_loss": value}]))
    return load_results(root)


GRID = [(0.0, 0.0), (1e-3, 0.0), (1e-2, 0.0), (0.0, 0.2), (0.0, 0.5), (1e-3, 0.2), (1e-2, 0.5)]


def test_a_combination_that_beats_each_kind_alone_is_the_answer(tmp_path):
    losses = dict(zip(GRID, [0.50, 0.45, 0.47, 0.46, 0.49, 0.40, 0.48], strict=True))
    table = kinds(_results(tmp_path / "r", losses))
    assert list(table["kind"]) == ["L2", "dropout", "combination"]
    assert list(table["setting"]) == ["l2=0.001", "dropout=0.2", "l2=0.001, dropout=0.2"]
    l2 = table.iloc[0]
    assert l2["mean"] == pytest.approx(statistics.mean(0.45 + 0.01 * s + 0.001 * ((s * 7 + 10) % 3)
                                                       for s in range(SEEDS)))
    assert l2["diff"] == pytest.approx(-0.05, abs=0.003) and l2["verdict"] == "better"
    combo = table.iloc[2]
    assert combo["vs_best_diff"] == pytest.approx(-0.05, abs=0.003) and combo["vs_best_high"] < 0
    sentence = table.attrs["sentence"]
    assert sentence.startswith("l2=0.001, dropout=0.2 together beat each kind alone: -0.05")
    assert "against the best alone (L2, l2=0.001)" in sentence and "against none" in sentence
    text = format_kinds(table)
    assert "against none: l2=0, dropout=0" in text and text.endswith(sentence)


def test_one_kind_best_and_none_best_are_said_as_they_are(tmp_path):
    one = dict(zip(GRID, [0.50, 0.49, 0.51, 0.42, 0.45, 0.43, 0.47], strict=True))
    sentence = kinds(_results(tmp_path / "a", one)).attrs["sentence"]
    assert sentence.startswith("Dropout is the best kind: dropout=0.2, -0.08")
    assert "next: L2 (l2=0.001" in sentence and "no combination beats it" in sentence
    none = dict(zip(GRID, [0.40, 0.45, 0.47, 0.46, 0.49, 0.44, 0.48], strict=True))
    assert kinds(_results(tmp_path / "b", none)).attrs["sentence"].startswith(
        "No kind beats none beyond its interval: the best, L2 (l2=0.001), is +0.05")


def test_on_a_metric_where_higher_is_better_a_worse_combination_does_not_beat_the_best_kind(tmp_path):
    # found on results/mnist1d_kinds: by test accuracy the combination was 0.157 *below* the best
    # kind alone, and the sentence said it beat each kind alone (it read a negative difference as better)
    one = dict(zip(GRID, [0.50, 0.49, 0.51, 0.42, 0.45, 0.43, 0.47], strict=True))
    res = _results(tmp_path / "a", one)
    table = kinds(res, metric="val_accuracy_at_best")
    assert table.iloc[0]["setting"] == "dropout=0.2" and table.iloc[-1]["vs_best_high"] < 0
    assert table.attrs["sentence"].startswith("Dropout is the best kind: dropout=0.2, +0.08")
    assert "no combination beats it" in table.attrs["sentence"]
    best = dict(zip(GRID, [0.50, 0.45, 0.47, 0.46, 0.49, 0.40, 0.48], strict=True))
    sentence = kinds(_results(tmp_path / "b", best), metric="val_accuracy_at_best").attrs["sentence"]
    assert sentence.startswith("l2=0.001, dropout=0.2 together beat each kind alone: +0.05")


def test_without_a_setting_free_of_every_kind_there_is_nothing_to_compare_with(tmp_path):
    losses = {(1e-3, 0.5): 0.4, (1e-2, 0.2): 0.5}  # neither is closer to none than the other
    with pytest.raises(InputError, match="no setting has every kind at none, nor one closest to it .* add a setting "
                                         "with l2=0, dropout=0"):
        kinds(_results(tmp_path / "r", losses))


def test_with_adamw_the_setting_closest_to_none_serves_as_none_and_the_sentence_says_so(tmp_path):
    """Issue 35.1: AdamW decays at 0.004 unless told otherwise, so no setting had every kind at none
    and `compare --kinds` refused with a baseline the user never gave."""
    names = ("weight_decay", "label_smoothing")
    losses = {(0.004, 0.0): 0.50, (0.01, 0.0): 0.44, (0.004, 0.1): 0.48}
    table = kinds(_results(tmp_path / "a", losses, names))
    assert list(table["setting"]) == ["weight_decay=0.01", "label_smoothing=0.1"]
    assert table.iloc[0]["diff"] == pytest.approx(-0.06, abs=0.003) and table.iloc[0]["verdict"] == "better"
    assert table.attrs["baseline"] == "weight_decay=0.004, label_smoothing=0"
    assert table.attrs["sentence"].startswith("Weight decay is the best kind: weight_decay=0.01")
    assert table.attrs["sentence"].endswith("No setting has every kind at none: weight_decay=0.004 (AdamW's "
                                            "default decay) serves as none.")
    tied = {(0.01, 0.1): 0.44, (0.004, 0.2): 0.48}
    with pytest.raises(InputError, match="nor one closest .* add a setting with weight_decay=0, label_smoothing=0"):
        kinds(_results(tmp_path / "b", tied, names))


def test_the_kinds_plot_has_a_panel_per_kind_with_the_baseline_band_and_the_best_marked(tmp_path):
    matplotlib.use("Agg")
    from mlreg.analysis.plots import figures, kinds_curves

    res = _results(tmp_path / "r", dict(zip(GRID, [0.50, 0.45, 0.47, 0.46, 0.49, 0.40, 0.48], strict=True)))
    axes = kinds_curves(res)
    assert [ax.get_title() for ax in axes] == ["L2", "dropout"]
    for ax in axes:
        assert ax.patches and ax.patches[0].get_label() == "none (mean, 95% interval)"  # the grey band
        stars = [line for line in ax.lines if line.get_marker() == "*"]
        assert len(stars) == 1
    assert axes[0].get_xscale() == "symlog" and axes[1].get_xscale() == "linear"
    assert [line for line in axes[0].lines if line.get_marker() == "*"][0].get_xdata()[0] == pytest.approx(1e-3)
    assert "kinds" in figures(res, ["kinds"])


def test_the_kinds_figure_wraps_its_panels_into_rows_readable_at_a_page_width():
    """Issue 35.8: seven kinds were seven panels in one row, 2808 x 456 px for mnist1d_kinds."""
    from mlreg import load_results
    from mlreg.analysis.kinds import KIND_COLUMNS
    from mlreg.analysis.plots import figures

    fig = figures(load_results("results/mnist1d_kinds"), ["kinds"])["kinds"]
    width, height = fig.get_size_inches() * fig.dpi
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == 7 and width <= 1100 and height >= 600, (width, height)
    assert len({round(ax.get_position().x0, 2) for ax in panels}) == KIND_COLUMNS  # three columns


def test_compare_kinds_on_the_command_line_and_the_reports_sentence(tmp_path, capsys):
    from mlreg.analysis.report import render
    from mlreg.cli import main

    res = _results(tmp_path / "r", dict(zip(GRID, [0.50, 0.45, 0.47, 0.46, 0.49, 0.40, 0.48], strict=True)))
    assert main(["compare", str(tmp_path / "r"), "--kinds"]) == 0
    out = capsys.readouterr().out
    assert "combination" in out and "together beat each kind alone" in out
    assert "<h2>Which kind?</h2>" in render(res, kinds=["kinds"])


def test_kinds_swept_one_at_a_time_as_named_variants(tmp_path):
    """An experiment that tries each kind alone (`[[variants]]`, as experiments/mnist1d_kinds.toml
    does) and one pair: the variants are the kinds' settings, not a parameter held fixed."""
    variants = {"none": (0.0, 0.0, 0.50), "L2 1e-3": (1e-3, 0.0, 0.45), "L2 1e-2": (1e-2, 0.0, 0.47),
                "dropout 0.2": (0.0, 0.2, 0.46), "both": (1e-3, 0.2, 0.40)}
    cols = columns("single_label", ["variant", "l2", "dropout"])
    with ResultsStore.open(tmp_path / "r", spec_toml="name = 'k'\n", columns=cols,
                           manifest={"experiment": "k", "swept": ["variant", "l2", "dropout"]}) as store:
        for name, (l2, dropout, loss) in variants.items():
            for seed in range(SEEDS):
                value = loss + 0.01 * seed + 0.001 * (seed % 2)
                run_id = f"{name}-s{seed}"
                store.append(RunResult(run_id, "ok", {"seed": seed, "variant": name, "l2": l2, "dropout": dropout,
                                                      "best_val_data_loss": value, "best_epoch": 5, "epochs_run": 8},
                                       [{"run_id": run_id, "epoch": 1, "val_data_loss": value}]))
    table = kinds(load_results(tmp_path / "r"))
    assert list(table["setting"]) == ["l2=0.001", "dropout=0.2", "l2=0.001, dropout=0.2"]
    assert table.attrs["held"] == {} and table.attrs["sentence"].startswith("l2=0.001, dropout=0.2 together beat")
    matplotlib.use("Agg")
    from mlreg.analysis.plots import figures

    assert "kinds" in figures(load_results(tmp_path / "r"), ["kinds"])  # mlreg plot drew none for mnist1d_kinds
