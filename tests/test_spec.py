from __future__ import annotations

import tomllib

import pytest

from mlreg.spec import PARAMS, ExperimentSpec, SpecError, load_spec
from tests.conftest import tiny_spec_dict, write_toml


def test_grid_times_seeds_expands_settings_outermost():
    spec = ExperimentSpec.from_dict(tiny_spec_dict(seeds=[3, 5], grid={"l2": [0, 1e-3], "dropout": [0.0, 0.5]}))
    runs = spec.expand()
    assert len(runs) == 2 * 2 * 2
    assert [r.seed for r in runs[:2]] == [3, 5]
    assert {(r.model.l2, r.model.dropout) for r in runs} == {(0.0, 0.0), (0.0, 0.5), (1e-3, 0.0), (1e-3, 0.5)}
    assert spec.swept == ["l2", "dropout"]
    assert len({r.run_id for r in runs}) == len(runs)


def test_variants_combine_with_grid():
    spec = ExperimentSpec.from_dict(tiny_spec_dict(
        variants=[{"name": "L2", "l2": 1e-3}, {"name": "Dropout", "dropout": 0.5},
                  {"name": "L2+Dropout", "l2": 1e-3, "dropout": 0.5}],
        grid={"hidden": [[8], [32, 32]]},
    ))
    runs = spec.expand()
    assert len(runs) == 3 * 2
    assert spec.swept == ["variant", "l2", "dropout", "hidden"]
    both = [r for r in runs if r.variant == "L2+Dropout"]
    assert {(r.model.l2, r.model.dropout) for r in both} == {(1e-3, 0.5)}
    assert {r.params_for_csv()["hidden"] for r in runs} == {"8", "32x32"}


def test_run_id_is_stable_and_depends_on_settings_and_seed():
    a = ExperimentSpec.from_dict(tiny_spec_dict()).expand()[0]
    b = ExperimentSpec.from_dict(tiny_spec_dict()).expand()[0]
    c = ExperimentSpec.from_dict(tiny_spec_dict(seeds=[1])).expand()[0]
    d = ExperimentSpec.from_dict(tiny_spec_dict(model={"l2": 1e-4})).expand()[0]
    assert a.run_id == b.run_id
    assert len({a.run_id, c.run_id, d.run_id}) == 3


def test_resolved_spec_round_trips_through_toml(tmp_path):
    spec = ExperimentSpec.from_dict(tiny_spec_dict(
        grid={"l2": [0, 1e-4], "hidden": [[8], [16, 8]]}, variants=[{"name": "drop", "dropout": 0.25}],
    ))
    text = spec.to_toml()
    again = ExperimentSpec.from_dict(tomllib.loads(text))
    assert again == spec
    assert again.to_toml() == text
    loaded = load_spec(write_toml(tmp_path / "x.toml", spec.to_dict()))
    assert loaded.to_dict() == spec.to_dict() and loaded.root == str(tmp_path)


def test_with_overrides_changes_defaults_and_drops_sweeps():
    spec = ExperimentSpec.from_dict(tiny_spec_dict(grid={"epochs": [5, 10], "l2": [0, 1]}))
    quick = spec.with_overrides(epochs=2)
    assert {r.training.epochs for r in quick.expand()} == {2}
    assert "epochs" not in quick.grid and len(quick.expand()) == 2


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"model": {"dropout": 1.5}}, r"model\.dropout.*Received: dropout=1\.5"),
        ({"model": {"l2": -0.1}}, r"model\.l2.*Received: l2=-0\.1"),
        ({"grid": {"l2": [0, -1e-3]}}, r"grid\.l2\[1\].*Received: l2=-0\.001"),
        ({"grid": {"dropout": [0.2, 1.0]}}, r"grid\.dropout\[1\].*Received: dropout=1\.0"),
        ({"model": {"dropuot": 0.1}}, r"Unknown key `model\.dropuot`"),
        ({"colour": "red"}, r"Unknown key `colour`"),
        ({"grid": {"l3": [1]}}, r"Unknown parameter `l3`"),
        ({"data": {"dataset": "mnist"}}, r"data\.dataset.*unknown data set 'mnist'.*Received: dataset='mnist'"),
        ({"data": {"train_size": 1}}, r"data\.train_size.*count >= 2"),
        ({"data": {"train_size": 1.5}}, r"data\.train_size.*Received: train_size=1\.5"),
        ({"model": {"activation": "swish2"}}, r"model\.activation.*Received: activation='swish2'"),
        ({"training": {"optimizer": "lbfgs"}}, r"training\.optimizer"),
        ({"model": {"l2": [0.1, 0.1, 0.1]}}, r"one rate per hidden layer"),
        ({"seeds": 0}, r"seeds"),
        ({"variants": [{"name": "a", "l2": 0.1}, {"name": "a", "l2": 0.2}]}, r"repeats 'a'"),
        ({"variants": [{"name": "a", "l2": 0.1}], "grid": {"l2": [0, 1]}}, r"both in \[grid\]"),
        ({"data": {"dataset": None, "path": "x.csv"}}, r"data\.target.*required"),
    ],
)
def test_invalid_values_name_the_field_and_value(overrides, match):
    with pytest.raises(SpecError, match=match):
        ExperimentSpec.from_dict(tiny_spec_dict(**overrides))


def test_load_spec_errors_are_spec_errors(tmp_path):
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [unclosed")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(bad)


def test_name_defaults_to_file_stem(tmp_path):
    d = tiny_spec_dict()
    del d["name"]
    assert load_spec(write_toml(tmp_path / "my_exp.toml", d)).name == "my_exp"


def test_every_param_is_a_field_of_its_section():
    from mlreg.spec import _SECTIONS

    for key, (section, field) in PARAMS.items():
        assert field in _SECTIONS[section].model_fields, key


def test_an_invalid_combination_names_the_setting():
    spec = ExperimentSpec.from_dict(tiny_spec_dict(model={"hidden": [8]}, grid={"hidden": [[8], [8, 8]]},
                                                   variants=[{"name": "per-layer", "l2": [0.1, 0.0]}]))
    with pytest.raises(SpecError, match=r"setting l2=0.1x0.0, hidden=8x8 is invalid.*one rate per hidden layer"):
        spec.expand()


def test_folds_and_repeats_are_runs_and_old_ids_stay():
    plain = ExperimentSpec.from_dict(tiny_spec_dict(seeds=2)).expand()
    cv = ExperimentSpec.from_dict(tiny_spec_dict(seeds=2, data={"folds": 3})).expand()
    rep = ExperimentSpec.from_dict(tiny_spec_dict(seeds=2, data={"folds": 3, "repeats": 2})).expand()
    assert [(r.seed, r.fold) for r in cv] == [(s, f) for s in (0, 1) for f in range(3)]
    assert len(rep) == 12 and {r.split for r in rep} == {0, 1} and len({r.run_id for r in rep}) == 12
    assert cv[0].resampling == {"fold": 0} and plain[0].resampling == {}
    assert ExperimentSpec.from_dict(tiny_spec_dict(seeds=2, data={"folds": 3})).n_runs == 6
    # a file without folds, repeats or shift keeps the ids it had before they existed
    assert ExperimentSpec.from_dict(tiny_spec_dict(seeds=2, data={"shift": 0.0})).expand()[0].run_id == plain[0].run_id
    assert plain[0].run_id == "02d23c6b666b"  # as in mlreg 0.1


def test_shift_is_sweepable_and_test_path_needs_path():
    spec = ExperimentSpec.from_dict(tiny_spec_dict(grid={"shift": [0.0, 0.5]}))
    assert [r.data.shift for r in spec.expand()] == [0.0, 0.5] and spec.swept == ["shift"]
    with pytest.raises(SpecError, match="test_path"):
        ExperimentSpec.from_dict(tiny_spec_dict(data={"test_path": "t.csv"}))
    with pytest.raises(SpecError, match=r"Received: folds=1"):
        ExperimentSpec.from_dict(tiny_spec_dict(data={"folds": 1}))


# -- messages that read right (issue 17.9) ---------------------------------------------------------
@pytest.mark.parametrize(("overrides", "message"), [
    ({"model": {"l2": "abc"}},
     "Invalid value for `model.l2`: expected a rate >= 0, or a list of rates (one per layer). Received: l2='abc'"),
    ({"grid": {"l2": 0.001}}, "Invalid value for `grid.l2`: grid values are lists: `l2 = [0.001]`. Received: l2=0.001"),
    ({"model": {"l2": "1e-3"}}, "Received: l2='1e-3'"),
    ({"training": {"learning_rate": "1e-3"}}, "Invalid value for `training.learning_rate`: expected a number"),
    ({"early_stopping": {"enabled": "no"}}, "Invalid value for `early_stopping.enabled`: expected true or false. "
                                            "Received: enabled='no'"),
    ({"grid": {"early_stopping": ["no", True]}}, "expected true or false. Received: early_stopping='no'"),
    ({"model": {"hiden": [3]}}, "Unknown key `model.hiden`; did you mean `hidden`?"),
    ({"grid": {"l3": [0.1]}}, "Unknown parameter `l3` in grid; did you mean `l2`? Expected one of"),
    ({"seeds": "three"}, "Invalid value for `seeds`: expected a count >= 1, a list of seeds, or {start, max}. "
                         "Received: seeds='three'"),
    ({"data": {"train_size": "half"}}, "Invalid value for `data.train_size`: expected a fraction in (0, 1] or a count"),
])
def test_messages_name_the_field_say_what_is_allowed_and_refuse_strings_for_numbers(overrides, message):
    with pytest.raises(SpecError) as e:
        ExperimentSpec.from_dict(tiny_spec_dict(**overrides))
    assert message in str(e.value)
    assert "tuple[" not in str(e.value) and ".float`" not in str(e.value)


def test_numbers_and_booleans_of_the_right_kind_are_taken():
    spec = ExperimentSpec.from_dict(tiny_spec_dict(model={"l2": 0, "hidden": [4, 2]}, training={"learning_rate": 1},
                                                   early_stopping={"enabled": False}, grid={"l1": [0, 1e-3]}))
    assert spec.model.l2 == 0.0 and spec.training.learning_rate == 1.0 and spec.model.hidden == (4, 2)


def test_a_builder_that_cannot_be_imported_is_named_with_the_file(tmp_path, cli):
    spec = write_toml(tmp_path / "e.toml", tiny_spec_dict(model={"builder": "no_such_module:build"}))
    for command in ("validate", "run"):
        code, _, err = cli(command, spec, *(["--out", tmp_path / "o"] if command == "run" else []))
        assert code == 2 and err.startswith(f"mlreg: error: {spec}: Invalid value for `model.builder`")
