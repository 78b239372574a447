"""What a finished run is: the summary, statistics and histograms, computed by hand here."""

from __future__ import annotations

import numpy as np
import pytest

from mlreg.records import (
    HISTORY,
    RUNS,
    columns,
    failed,
    finish,
    kernel_stats,
    monitor_mode,
    monitors,
    weight_histograms,
)
from mlreg.spec import ExperimentSpec
from tests.conftest import tiny_spec_dict


def _run(**overrides):
    return ExperimentSpec.from_dict(tiny_spec_dict(**overrides)).expand()[0]


def _row(epoch, val, train, **kw):
    return {"run_id": "r", "epoch": epoch, "loss": train + 0.1, "penalty": 0.01, "train_data_loss": train,
            "val_data_loss": val, "val_loss": val + 0.01, "accuracy": 0.5, "val_accuracy": 1 - val,
            "train_accuracy": 1 - train, **kw}


HISTORY_ROWS = [_row(1, 0.9, 0.8), _row(2, 0.5, 0.3), _row(3, 0.6, 0.1)]
KERNELS = {"hidden_1": np.array([[0.5, -0.0005], [2.0, 0.0]]), "output": np.array([[-1.5], [0.25]])}


def test_kernel_stats_by_hand():
    stats = kernel_stats(list(KERNELS.values()))
    assert stats["weight_l1"] == pytest.approx(0.5 + 0.0005 + 2.0 + 1.5 + 0.25)
    assert stats["weight_l2"] == pytest.approx(0.25 + 0.0005**2 + 4.0 + 2.25 + 0.0625)
    assert stats["sparsity"] == pytest.approx(2 / 6)  # |-0.0005| and 0.0 are below 1e-3


def test_histograms_use_fixed_bins_and_overflow():
    rows = weight_histograms("r", KERNELS)
    assert sum(r["count"] for r in rows) == 6
    overflow = [r for r in rows if r["layer"] == "hidden_1" and r["bin_left"] == 1.0]
    assert overflow[0]["bin_right"] == np.inf and overflow[0]["count"] == 1  # the 2.0
    quarter = [r for r in rows if r["layer"] == "output" and r["count"] and r["bin_left"] <= 0.25 < r["bin_right"]]
    assert quarter[0]["bin_left"] == pytest.approx(0.25)


def test_finish_with_restored_best_weights():
    res = finish(_run(), engine="keras", backend="tensorflow", task="single_label", history=HISTORY_ROWS, best=1,
                 restored=True,
                 stopped=True, kernels=KERNELS, test={"data_loss": 0.7, "accuracy": 0.4}, n_params=9, duration_s=1.5)
    s = res.summary
    assert res.status == "ok" and s["engine"] == "keras"
    assert (s["best_epoch"], s["kept_epoch"], s["stopped_epoch"], s["epochs_run"]) == (2, 2, 3, 3)
    # the kept model is epoch 2's: its validation loss, not that of the last epoch trained (0.6)
    assert s["best_val_data_loss"] == 0.5 and s["gap"] == pytest.approx(0.2) and s["final_val_data_loss"] == 0.5
    assert s["val_accuracy_at_best"] == 0.5 and s["test_data_loss"] == 0.7 and s["test_accuracy"] == 0.4
    written = columns("single_label", list(_run().params_for_csv()), has_test=True)
    assert set(res.row()) <= set(written[RUNS]) and res.timing_rows()[-1] == {"run_id": res.run_id, "epoch": "",
                                                                               "seconds": 1.5}


def test_finish_without_early_stopping_keeps_the_last_epoch():
    res = finish(_run(), engine="fused", backend="jax", task="single_label", history=HISTORY_ROWS, best=None,
                 restored=False,
                 stopped=False, kernels=KERNELS, test=None, n_params=9, duration_s=1.0)
    assert (res.summary["best_epoch"], res.summary["kept_epoch"], res.summary["stopped_epoch"]) == (2, 3, None)
    assert res.summary["final_val_data_loss"] == 0.6  # the last epoch's model is the one kept


def test_finish_of_a_diverged_run_has_no_best_columns():
    rows = [*HISTORY_ROWS[:2], _row(3, float("nan"), 0.1)]
    res = finish(_run(), engine="fused", backend="jax", task="single_label", history=rows, best=1, restored=True,
                 stopped=False, kernels=KERNELS, test=None, n_params=9, duration_s=1.0)
    assert res.status == "diverged" and res.weights == [] and "best_epoch" not in res.summary
    assert res.summary["error"] == "non-finite loss at epoch 3"


def test_failed_records_the_message_on_one_line():
    res = failed(_run(), ValueError("bad\nthing"), engine="keras", backend="jax", duration_s=0.5)
    assert res.status == "failed" and res.summary["error"] == "ValueError: bad thing"


def test_monitors_and_their_direction():
    assert monitor_mode("val_accuracy") == "max" and monitor_mode("val_data_loss") == "min"
    assert monitor_mode("train_mae") == "min"
    assert set(monitors("regression")) < set(columns("regression", [])[HISTORY])
    assert "val_mae" in monitors("regression") and "lr" not in monitors("single_label")


# -- one line for an error ------------------------------------------------------------------------
def _raised(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        return e
    raise AssertionError("did not raise")


def test_an_error_line_has_no_escape_codes_and_keeps_the_layers_own_message():
    from mlreg.records import error_line

    message = ("Exception encountered when calling PerRunDropout.call().\n\n\x1b[1m'PerRunDropout' object has no "
               "attribute 'seed_generator'\x1b[0m\n\nArguments received by PerRunDropout.call():\n  • inputs=jnp")

    def keras_style():
        raise AttributeError(message)

    line = error_line(_raised(keras_style))
    assert "\x1b" not in line and "\n" not in line
    assert line.startswith("AttributeError: 'PerRunDropout' object has no attribute 'seed_generator' "
                           "(in PerRunDropout.call)"), line
    assert error_line("\x1b[1mbold\x1b[0m  text") == "bold text"


def test_an_error_line_names_the_users_file_not_generated_code_and_else_mlregs_engine(tmp_path):
    from mlreg.records import error_line

    generated = tmp_path / "__autograph_generated_filexyz.py"
    generated.write_text("def f():\n    raise ValueError('in generated code')\n")
    namespace: dict = {}
    exec(compile(generated.read_text(), str(generated), "exec"), namespace)
    assert "__autograph_generated" not in error_line(_raised(namespace["f"]))
    assert "(at tests/test_records.py:" in error_line(_raised(lambda: 1 / 0))

    from mlreg.engines.fused.packing import pack_sizes

    error = _raised(lambda: pack_sizes("not a number"))  # raises inside mlreg's engine
    error.__traceback__ = error.__traceback__.tb_next.tb_next  # as from mlreg's driver: no frame of the user's
    assert error_line(error).endswith(f"(in mlreg's engine, fused/packing.py:{error.__traceback__.tb_lineno})")
