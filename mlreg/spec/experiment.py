"""The whole experiment (`ExperimentSpec`): the sections' defaults, the grid and variants, the
seeds, and the runs they expand to."""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Iterator
from typing import Any

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from mlreg import memory
from mlreg.errors import InputError, SpecError
from mlreg.spec.messages import _check_param, _drop_none, _format, _key, dumps_toml
from mlreg.spec.names import PARAMS
from mlreg.spec.runs import RunSpec, format_value
from mlreg.spec.sections import (
    _SECTIONS,
    AdaptiveSeeds,
    DataSpec,
    EarlyStoppingSpec,
    ModelSpec,
    SearchSpec,
    TrainingSpec,
    _dump_section,
    _Section,
    log_swept,
)


class ExperimentSpec(_Section):
    """A whole experiment: defaults, what to sweep, and over how many seeds.

    Attributes:
        name: the experiment's name; results go to `results/<name>/` by default.
        description: free text, kept with the results.
        seeds: a count (seeds 0..n-1), an explicit list, or `{start, max}`: as many as a
            search needs (see `AdaptiveSeeds`). Defaults to `3`.
        max_failures: failed runs in a row that stop the sweep. Defaults to `3`.
        grid: parameter -> list of values, swept as a cartesian product.
        variants: named settings (`{"name": "L2", "l2": 1e-3}`), each combined
            with the grid.
        search: how the runs are chosen (`SearchSpec`): the full grid by default.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    seeds: int | tuple[int, ...] | AdaptiveSeeds = 3
    max_failures: int = Field(3, ge=1)
    data: DataSpec = DataSpec()
    model: ModelSpec = ModelSpec()
    training: TrainingSpec = TrainingSpec()
    early_stopping: EarlyStoppingSpec = EarlyStoppingSpec()
    grid: dict[str, tuple[Any, ...]] = {}
    variants: tuple[dict[str, Any], ...] = ()
    search: SearchSpec = SearchSpec()
    _root: str | None = PrivateAttr(default=None)  # the experiment file's folder (load_spec sets it)
    _source: str = PrivateAttr(default="experiment")  # what errors are prefixed with: the file (load_spec sets it)

    @field_validator("seeds", mode="before")
    @classmethod
    def _adaptive(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        if set(v) != {"start", "max"}:
            raise ValueError(f"Invalid value for `seeds`: expected a table of `start` and `max`, e.g. "
                             f"seeds = {{start = 3, max = 30}}. Received: seeds={v!r}")
        try:
            return AdaptiveSeeds.model_validate(v)
        except ValidationError as e:  # said of its own fields, not of every kind `seeds` takes
            raise ValueError(_format(e).replace("for `", "for `seeds.").replace("key `", "key `seeds.")) from None

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: int | tuple[int, ...] | AdaptiveSeeds) -> int | tuple[int, ...] | AdaptiveSeeds:
        if isinstance(v, int) and v < 1:
            raise ValueError(f"expected a count >= 1 or a list of seeds; got {v}")
        if isinstance(v, tuple) and (not v or len(set(v)) != len(v)):
            raise ValueError("expected a non-empty list of distinct seeds")
        return v

    @field_validator("grid", mode="before")
    @classmethod
    def _grid_lists(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        for key, values in v.items():
            if not isinstance(values, list | tuple):
                raise ValueError(f"Invalid value for `grid.{key}`: grid values are lists: "
                                 f"`{key} = [{json.dumps(values)}]`. Received: {key}={values!r}")
        return {k: tuple(values) for k, values in v.items()}

    @model_validator(mode="after")
    def _sweeps(self) -> ExperimentSpec:
        grid = {}
        for key, values in self.grid.items():
            _check_param(key, "grid")
            if not values:
                raise ValueError(f"Invalid value for `grid.{key}`: expected a non-empty list")
            grid[key] = tuple(self._resolve(key, v, f"grid.{key}[{i}]") for i, v in enumerate(values))
            if len(set(map(_key, grid[key]))) != len(grid[key]):
                raise ValueError(f"Invalid value for `grid.{key}`: values repeat: {list(values)}")
        object.__setattr__(self, "grid", grid)
        names = set()
        variants = []
        for i, variant in enumerate(self.variants):
            name = variant.get("name")
            if not isinstance(name, str) or not name:
                raise ValueError(
                    f"Invalid value for `variants[{i}].name`: expected a non-empty string. Received: name={name!r}"
                )
            if name in names:
                raise ValueError(f"Invalid value for `variants[{i}].name`: repeats {name!r}")
            names.add(name)
            resolved = {"name": name}
            for key, v in variant.items():
                if key == "name":
                    continue
                _check_param(key, f"variants[{i}]")
                if key in self.grid:
                    raise ValueError(f"`{key}` is both in [grid] and in variant {name!r}; keep it in one")
                resolved[key] = self._resolve(key, v, f"variants[{i}].{key}")
            variants.append(resolved)
        object.__setattr__(self, "variants", tuple(variants))
        if "curve" in self.search.strategies:
            self.curve_param  # noqa: B018 - refused here, with the file, when there is none
        if "extrapolate" in self.search.strategies:
            self._extrapolates()
        return self

    def _extrapolates(self) -> None:
        """Refuses, with the file, an experiment an extrapolating search cannot work on."""
        others = [s for s in self.search.strategies if s not in ("extrapolate", "halving")]
        if others or self.search.zoom:
            raise ValueError(f"Invalid value for `search.strategy`: an extrapolating search places the rates itself; "
                             f"it takes halving and seeds = {{start, max}} inside each size, not "
                             f"{', '.join(others + (['zoom'] if self.search.zoom else []))}. "
                             f"Received: strategy={self.search.strategy!r}")
        swept = "train_size" in self.grid or any("train_size" in v for v in self.variants)
        if swept:
            raise ValueError("Invalid value for `search.strategy`: an extrapolating search sets the training-set "
                             "size itself (`search.fractions` of `data.train_size`); take `train_size` out of the "
                             "grid. Received: strategy='extrapolate'")
        self.curve_param  # noqa: B018 - the rate, on a log grid

    @property
    def curve_param(self) -> str:
        """The rate a `curve` (or `extrapolate`) search places new values of: `[search] param`,
        else the one parameter the grid sweeps on a log scale (`log_swept`)."""
        swept = log_swept(self.grid)
        wanted = self.search.param
        if wanted is not None and wanted not in swept:
            raise ValueError(f"Invalid value for `search.param`: a curve search needs a rate the grid sweeps on a log "
                             f"scale (three or more positive values, each at least twice the last); the grid has "
                             f"{swept or 'none'}. Received: param={wanted!r}")
        if wanted is None and len(swept) != 1:
            which = "extrapolate" if "extrapolate" in self.search.strategies else "curve"
            raise ValueError(f"Invalid value for `search.strategy`: a{'n' * (which[0] == 'e')} {which} search needs "
                             f"one rate swept on a log scale (three or more positive values, each at least twice the "
                             f"last); the grid has {swept or 'none'}: "
                             f"{'name one with `search.param`' if swept else 'add one'}. Received: strategy={which!r}")
        return wanted or swept[0]

    def _resolve(self, key: str, value: Any, where: str) -> Any:
        section, field = PARAMS[key]
        base = getattr(self, section).model_dump()
        try:
            checked = _SECTIONS[section].model_validate({**base, field: value})
        except ValidationError as e:
            raise ValueError(_format(e, prefix=where, value=value)) from None
        return getattr(checked, field)

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "experiment") -> ExperimentSpec:
        """Validates a plain dict (as read from TOML); raises `SpecError` naming the field."""
        try:
            spec = cls.model_validate(d)
        except ValidationError as e:
            raise SpecError(f"{source}: {_format(e)}") from None
        spec._source = source
        return spec

    @property
    def source(self) -> str:
        """Where the experiment comes from (its file, for `load_spec`): error messages begin with it."""
        return self._source

    def named(self, error: InputError) -> InputError:
        """`error` with the experiment's source in front, as every error about the file reads."""
        text = str(error)
        return error if text.startswith(f"{self._source}:") else type(error)(f"{self._source}: {text}")

    def with_overrides(self, **fields: Any) -> ExperimentSpec:
        """Returns a copy with defaults changed, e.g. `with_overrides(epochs=2)`."""
        d = self.to_dict()
        for key, value in fields.items():
            _check_param(key, "override")
            section, field = PARAMS[key]
            d.setdefault(section, {})[field] = value
            d["grid"].pop(key, None)
            for v in d["variants"]:
                v.pop(key, None)
        spec = ExperimentSpec.from_dict(d, source=self._source).at(self._root)
        return spec

    @property
    def root(self) -> str | None:
        """The folder relative paths are resolved against (the experiment file's), or `None`."""
        return self._root

    def at(self, root: str | os.PathLike[str] | None) -> ExperimentSpec:
        """This experiment with relative paths (`data.path`, `data.test_path`,
        `model.base_model`) resolved against `root` (`load_spec` gives the file's folder)."""
        self._root = None if root is None else str(root)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The resolved spec as plain data (no `None`), ready for TOML."""
        d = self.model_dump(mode="json")
        for name in _SECTIONS:
            d[name] = _dump_section(name, d[name])
        if self.search == SearchSpec():  # the grid: spec.toml as before searches existed
            d.pop("search")
        else:
            d["search"] = _dump_section("search", d["search"])
        return _drop_none(d)  # TOML has no null

    def to_toml(self) -> str:
        """The experiment as TOML. A builder function or arrays passed in memory are written as
        their labels, with a first comment naming those fields: the file records them, and
        runs again only where they are passed again (`mlreg.sweep`, `mlreg.memory`)."""
        text = dumps_toml(self.to_dict())
        held = [f"model.builder = {self.model.builder!r}"] if memory.BUILDER_LABEL.fullmatch(self.model.builder) else []
        held += [f"data.memory = {self.data.memory!r}"] if self.data.memory else []
        if not held:
            return text
        return (f"# {' and '.join(held)} name Python objects passed in memory (a function, arrays): recorded "
                f"here, not held; to run this file, pass them again (mlreg.sweep)\n{text}")

    # -- planning -----------------------------------------------------------------
    @property
    def seed_list(self) -> list[int]:
        """Every seed the plan may use (with `{start, max}`: `max` of them)."""
        if isinstance(self.seeds, AdaptiveSeeds):
            return list(range(self.seeds.max))
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    @property
    def searches(self) -> bool:
        """Whether a search chooses the runs (halving, seeds added as needed, zoom), not the grid."""
        return bool(self.search.strategies) or isinstance(self.seeds, AdaptiveSeeds) or self.search.zoom > 0

    @property
    def swept(self) -> list[str]:
        """The parameters that change between settings, in file order (`variant` first)."""
        keys = ["variant"] if self.variants else []
        for v in self.variants:
            keys += [k for k in v if k != "name" and k not in keys]
        return keys + [k for k in self.grid if k not in keys]

    @property
    def n_settings(self) -> int:
        """How many settings the file describes, counted without listing them."""
        return max(len(self.variants), 1) * math.prod(len(v) for v in self.grid.values())

    @property
    def n_resamples(self) -> int:
        """Data splits per setting and seed: `repeats x folds`, or `draws` (1 without resampling)."""
        return (self.data.repeats or 1) * (self.data.folds or 1) * (self.data.draws or 1)

    @property
    def n_runs(self) -> int:
        """How many runs the file describes (settings x seeds x splits), counted without listing them."""
        return self.n_settings * len(self.seed_list) * self.n_resamples

    @property
    def size(self) -> str:
        """`n_runs` spelled out: "1,000,000 runs = 10,000 settings x 100 seeds [x 3 splits | draws]"."""
        def count(n: int, word: str) -> str:
            return f"{n:,} {word}{'s' * (n != 1)}"

        splits = f" x {count(self.n_resamples, 'draw' if self.data.draws else 'split')}" if self.n_resamples > 1 else ""
        return (f"{count(self.n_runs, 'run')} = {count(self.n_settings, 'setting')} x "
                f"{count(len(self.seed_list), 'seed')}{splits}")

    def data_specs(self) -> list[DataSpec]:
        """The distinct `[data]` sections of the plan (the data parameters swept), without
        listing the runs."""
        keys = [k for k in PARAMS if PARAMS[k][0] == "data"]
        base = {k: getattr(self.data, PARAMS[k][1]) for k in keys}
        choices = [list(self.grid[k]) if k in self.grid else [v.get(k, base[k]) for v in self.variants] or [base[k]]
                   for k in keys]
        out: dict[str, DataSpec] = {}
        for combo in itertools.product(*choices):
            d = self.data.model_copy(update={PARAMS[k][1]: v for k, v in zip(keys, combo, strict=True)})
            out.setdefault(json.dumps(d.model_dump(mode="json"), sort_keys=True), d)
        return list(out.values()) or [self.data]

    def settings(self) -> Iterator[tuple[str | None, dict[str, Any]]]:
        """Every (variant name, overrides) pair to run, seeds not included, one at a time."""
        variants = [(v["name"], {k: x for k, x in v.items() if k != "name"}) for v in self.variants]
        for name, over in variants or [(None, {})]:
            for combo in itertools.product(*self.grid.values()):
                yield name, {**over, **dict(zip(self.grid, combo, strict=True))}

    def expand(self) -> list[RunSpec]:
        """One `RunSpec` per (setting, seed), settings outermost."""
        return list(self.iter_runs())

    def iter_runs(self) -> Iterator[RunSpec]:
        """The runs of `expand`, one at a time (a plan too large to list can still be sampled)."""
        for variant, overrides in self.settings():
            sections = {s: getattr(self, s).model_dump() for s in _SECTIONS}
            for key, value in overrides.items():
                section, field = PARAMS[key]
                sections[section][field] = value
            try:
                built = {s: _SECTIONS[s].model_validate(v) for s, v in sections.items()}
                built["training"] = built["training"].resolved()
            except ValidationError as e:  # each value was fine alone; this combination is not
                setting = ", ".join(f"{k}={format_value(v)}" for k, v in overrides.items())
                raise SpecError(f"{self.name}: the setting {setting} is invalid: {_format(e)}") from None
            data = built["data"]
            for seed in self.seed_list:
                for draw in range(data.draws) if data.draws else [None]:
                    for split in range(data.repeats) if data.repeats else [None]:
                        for fold in range(data.folds) if data.folds else [None]:
                            yield RunSpec(experiment=self.name, seed=seed, variant=variant, **built, split=split,
                                          fold=fold, draw=draw, root=self._root)

