from __future__ import annotations

import math
import statistics

import pytest

from mlreg.analysis.compare import compare, format_table, higher_is_better, parse_setting
from mlreg.analysis.results import load_results
from mlreg.stats import holm, t975
from tests.conftest import make_results

BASE = [0.50, 0.52, 0.48, 0.51]
GOOD = [0.40, 0.43, 0.37, 0.42]          # better than BASE on every seed
NOISY = [0.45, 0.60, 0.40, 0.58]         # no clear difference


@pytest.fixture
def res(tmp_path):
    return load_results(make_results(tmp_path / "l2", {0.0: BASE, 0.01: GOOD, 0.1: NOISY},
                                     statuses={(0.1, 3): "diverged"}))


def test_table_matches_hand_computation(res):
    table = compare(res).set_index("l2")
    good = table.loc[0.01]
    assert good["n"] == 4 and good["mean"] == pytest.approx(statistics.mean(GOOD))
    assert good["std"] == pytest.approx(statistics.stdev(GOOD))
    assert (good["min"], good["max"]) == (min(GOOD), max(GOOD))
    assert good["rank"] == 1 and good["best"] == "*" and good["gap"] == pytest.approx(0.1)
    noisy = table.loc[0.1]
    assert noisy["n"] == 3 and noisy["diverged"] == 1 and noisy["mean"] == pytest.approx(statistics.mean(NOISY[:3]))
    assert list(compare(res)["l2"]) == [0.01, 0.1, 0.0]  # ranked by mean (0.405, 0.483, 0.5025)


def test_paired_difference_and_interval_by_hand(res):
    table = compare(res, baseline="l2=0").set_index("l2")
    d = [g - b for g, b in zip(GOOD, BASE, strict=True)]
    half = t975(3) * statistics.stdev(d) / math.sqrt(4)
    row = table.loc[0.01]
    assert row["diff"] == pytest.approx(statistics.mean(d))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((statistics.mean(d) - half, statistics.mean(d) + half))
    assert row["verdict"] == "better"
    assert table.loc[0.0, "verdict"] == "baseline"
    # the noisy setting pairs only the 3 seeds it finished, and is inconclusive
    d3 = [n - b for n, b in zip(NOISY[:3], BASE[:3], strict=True)]
    assert table.loc[0.1, "diff"] == pytest.approx(statistics.mean(d3))
    assert table.loc[0.1, "verdict"] == "inconclusive"


def test_worse_and_higher_is_better(res):
    table = compare(res, baseline="l2=0.01").set_index("l2")
    assert table.loc[0.0, "verdict"] == "worse"
    acc = compare(res, metric="val_accuracy_at_best")
    assert acc.iloc[0]["l2"] == 0.01 and higher_is_better("val_accuracy_at_best")
    assert not higher_is_better("best_val_data_loss")


def test_t_quantiles_are_exact():
    """Issue 8.18: a 3-digit table with an approximation past 30 degrees of freedom."""
    assert t975(3) == pytest.approx(3.182446305, abs=1e-9)
    assert t975(40) == pytest.approx(2.021075390, abs=1e-9)  # the table's approximation gave 2.0200


def test_p_values_and_holm_by_hand(res):
    table = compare(res, baseline="l2=0").set_index("l2")
    d = [g - b for g, b in zip(GOOD, BASE, strict=True)]
    t = statistics.mean(d) / (statistics.stdev(d) / math.sqrt(4))
    from scipy import stats

    assert table.loc[0.01, "p"] == pytest.approx(2 * stats.t.sf(abs(t), 3))
    assert holm([0.01, 0.04, 0.03, float("nan")])[:3] == pytest.approx([0.03, 0.06, 0.06])
    adjusted = compare(res, baseline="l2=0", adjust="holm").set_index("l2")
    p = list(adjusted["p"].drop(0.0))
    assert list(adjusted["p_holm"].drop(0.0)) == pytest.approx(holm(p))
    assert adjusted.loc[0.01, "verdict"] == ("better" if adjusted.loc[0.01, "p_holm"] < 0.05 else "inconclusive")
    with pytest.raises(ValueError, match="Received: adjust='bonferroni'"):
        compare(res, baseline="l2=0", adjust="bonferroni")


def test_several_directories(tmp_path):
    a = load_results(make_results(tmp_path / "l2_sweep", {0.0: BASE, 0.01: GOOD}))
    b = load_results(make_results(tmp_path / "dropout_sweep", {0.5: NOISY}, param="dropout"))
    table = compare([a, b])
    assert set(table["experiment"]) == {"l2_sweep", "dropout_sweep"} and len(table) == 3
    assert table.iloc[0]["experiment"] == "l2_sweep" and table.iloc[0]["l2"] == 0.01


def test_errors(res):
    with pytest.raises(ValueError, match="Received: metric='nope'"):
        compare(res, metric="nope")
    with pytest.raises(ValueError, match="Received: by="):
        compare(res, by=["nope"])
    with pytest.raises(ValueError, match="matches 0 settings"):
        compare(res, baseline="l2=5")
    with pytest.raises(ValueError, match="param=value"):
        parse_setting("l2")


def test_format_table_is_readable(res):
    text = format_table(compare(res, baseline="l2=0"))
    assert "mean best_val_data_loss" in text and "better" in text and "*" in text


def test_a_setting_without_ok_runs_is_shown_and_ranked_last(tmp_path):
    """Issue 8.1: a diverged setting crashed compare (`boolean value of NA is ambiguous`)."""
    res = load_results(make_results(tmp_path / "lr", {1e6: [0.0, 0.0], 0.001: [0.5, 0.6]}, param="learning_rate",
                                    statuses={(1e6, 0): "diverged", (1e6, 1): "failed"}))
    table = compare(res, baseline="learning_rate=0.001")
    assert list(table.learning_rate) == [0.001, 1e6]
    last = table.iloc[1]
    assert (last["n"], last["diverged"], last["failed"], last["rank"], last["best"]) == (0, 1, 1, 2, "")
    assert last["verdict"] == "no ok runs"
    assert "no ok runs" in format_table(table)
    with pytest.raises(ValueError, match="the baseline has no ok runs"):
        compare(res, baseline="learning_rate=1e6")


def test_nadeau_bengio_interval_by_hand_when_runs_span_folds(tmp_path):
    """Issue 9: pairs on (seed, fold), and the variance of the mean difference is
    s^2 (1/J + n_val/n_train) rather than s^2/J."""
    from mlreg.records import RunResult, columns
    from mlreg.store import ResultsStore

    base = {(s, f): 0.50 + 0.01 * s + 0.02 * f for s in range(2) for f in range(3)}
    good = {k: v - 0.03 + 0.004 * (k[0] - k[1]) for k, v in base.items()}
    with ResultsStore.open(tmp_path / "cv", spec_toml="x", manifest={"swept": ["l2"]},
                           columns=columns("single_label", ["l2"], resampling=["fold"])) as store:
        for l2, losses in ((0.0, base), (0.01, good)):
            for (seed, fold), loss in losses.items():
                run_id = f"{l2}-{seed}-{fold}"
                store.append(RunResult(run_id, "ok", {"run_id": run_id, "status": "ok", "seed": seed, "fold": fold,
                                                      "l2": l2, "n_train": 300, "n_val": 100,
                                                      "best_val_data_loss": loss}))
    table = compare(load_results(tmp_path / "cv"), baseline="l2=0").set_index("l2")
    d = [good[k] - base[k] for k in base]
    se = statistics.stdev(d) * math.sqrt(1 / 6 + 100 / 300)
    row = table.loc[0.01]
    assert row["diff"] == pytest.approx(statistics.mean(d))
    assert row["ci_low"] == pytest.approx(statistics.mean(d) - t975(5) * se)
    assert row["ci_high"] == pytest.approx(statistics.mean(d) + t975(5) * se)
    note = format_table(compare(load_results(tmp_path / "cv"), baseline="l2=0"))
    assert "shared (seed, fold), Nadeau-Bengio corrected" in note and "n_val/n_train = 0.333" in note


def test_a_boolean_setting_can_be_the_baseline(tmp_path):
    """Found with the mnist1d experiment: `early_stopping=false` was refused as not numeric."""
    from mlreg.records import RunResult, columns
    from mlreg.store import ResultsStore

    with ResultsStore.open(tmp_path / "r", spec_toml="x", manifest={"swept": ["early_stopping"]},
                           columns=columns("single_label", ["early_stopping"])) as store:
        for seed in range(3):
            for enabled in (True, False):
                run_id = f"{enabled}-{seed}"
                store.append(RunResult(run_id, "ok", {"run_id": run_id, "status": "ok", "seed": seed,
                                                      "early_stopping": enabled,
                                                      "best_val_data_loss": 0.3 - 0.1 * enabled + 0.01 * seed}))
    res = load_results(tmp_path / "r")
    for text in ("early_stopping=false", "early_stopping=False"):
        table = compare(res, baseline=text).set_index("early_stopping")
        assert table.loc[True, "diff"] == pytest.approx(-0.1) and table.loc[False, "verdict"] == "baseline"
    with pytest.raises(ValueError, match="true or false"):
        compare(res, baseline="early_stopping=maybe")


def _two_params(tmp_path, runs_data_hash=None):
    import pandas as pd

    from mlreg.analysis.results import Results

    rows = [{"run_id": f"{l2}-{d}-{s}", "status": "ok", "seed": s, "l2": l2, "dropout": d,
             "best_val_data_loss": 0.5 - l2 * 10 - d / 10 + s / 100} for l2 in (0.0, 0.01) for d in (0.0, 0.5)
            for s in range(3)]
    manifest = {"swept": ["l2", "dropout"]} | ({"data_hash": runs_data_hash} if runs_data_hash else {})
    return Results(tmp_path, pd.DataFrame(rows), pd.DataFrame(columns=["run_id", "epoch"]),
                   pd.DataFrame(columns=["run_id", "layer", "bin_left", "bin_right", "count"]), ["l2", "dropout"],
                   manifest, "")


def test_a_baseline_of_two_parameters_with_spaces_or_commas(tmp_path):
    """Issue 17.12: only "l2=0,dropout=0" worked; a baseline matching several settings said nothing of the syntax."""
    res = _two_params(tmp_path)
    for text in ("l2=0 dropout=0", "l2=0,dropout=0", "l2=0, dropout=0"):
        table = compare(res, baseline=text)
        assert (table.verdict == "baseline").sum() == 1, text
    with pytest.raises(ValueError, match=r"matches 2 settings.*differ in \['l2', 'dropout'\].*--baseline \"l2="):
        compare(res, baseline="l2=0")


def test_directories_on_different_data_are_listed_but_never_paired(tmp_path):
    """Issue 17.11: a tabular and an image experiment were ranked together with paired verdicts."""
    a = _two_params(tmp_path / "a", runs_data_hash="1111")
    b = _two_params(tmp_path / "b", runs_data_hash="2222")
    object.__setattr__(b, "root", tmp_path / "b")
    table = compare([a, b])  # side by side is fine
    assert len(table) == 8
    with pytest.raises(ValueError, match=r"trained on different data \(data hash .*1111.*2222\).*without a baseline"):
        compare([a, b], baseline="l2=0 dropout=0")


def test_the_gap_and_the_best_epoch_can_be_the_metric(tmp_path):
    res = load_results(make_results(tmp_path / "r", {0.0: BASE, 0.01: GOOD}))
    for metric in ("gap", "best_epoch"):
        table = compare(res, metric=metric, baseline="l2=0")
        assert table.attrs["metric"] == metric and set(table["verdict"]) <= {"baseline", "inconclusive", "better",
                                                                               "worse"}


def test_results_print_in_one_line():
    # issue 27, item 6: repr(Results) dumped its DataFrames
    from mlreg.analysis.results import load_results
    from tests.conftest import ROOT

    text = repr(load_results(ROOT / "results" / "l2_rate"))
    assert text.startswith("Results(") and "\n" not in text and "runs (" in text and "swept: l2" in text
    assert len(text) < 200
