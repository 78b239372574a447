"""A run (`RunSpec`): resolved settings, a seed and its data split; its id; how values are written."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mlreg.spec.names import BUILDER_PARAMS, MODEL_PARAMS, PARAMS
from mlreg.spec.sections import _SECTIONS, DataSpec, EarlyStoppingSpec, ModelSpec, TrainingSpec, _dump_section


@dataclass(frozen=True)
class RunSpec:
    """One run: fully resolved settings, a seed, and which data split. Immutable.

    Attributes:
        split: with `data.repeats`, which draw of the train/validation split (its seed is
            `data.seed + split`); else `None`.
        fold: with `data.folds`, which fold is the validation set; else `None`.
        draw: with `data.draws`, which independent sample of the generated data; else `None`.
        root: the folder that relative paths of the experiment file are resolved against
            (the file's own); not part of what the run is.
        takes: the model parameters (`MODEL_PARAMS`) its builder takes: for a built-in
            builder `BUILDER_PARAMS`'; for a user's, the runner reads its signature. `None`: all.
            Not part of what the run is.
    """

    experiment: str
    seed: int
    variant: str | None
    data: DataSpec
    model: ModelSpec
    training: TrainingSpec
    early_stopping: EarlyStoppingSpec
    split: int | None = None
    fold: int | None = None
    draw: int | None = None
    root: str | None = None
    takes: tuple[str, ...] | None = None

    @property
    def run_id(self) -> str:
        """A stable hash of the resolved settings, seed, split, fold and draw (12 hex digits);
        the last three enter only when set, so ids from before resampling existed stay."""
        payload = {s: _dump_section(s, getattr(self, s).model_dump(mode="json")) for s in _SECTIONS}
        payload |= {"seed": self.seed, "variant": self.variant} | self.resampling
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def data_key(self) -> str:
        """Which data the run trains on: its `[data]` section, split, fold, draw and folder."""
        return json.dumps([self.data.model_dump(mode="json"), self.split, self.fold, self.root, self.draw],
                          sort_keys=True)

    @property
    def resampling(self) -> dict[str, int]:
        """`split`, `fold` and `draw` where set: the columns of `runs.csv` that say which data
        the run saw."""
        return {k: v for k, v in (("split", self.split), ("fold", self.fold), ("draw", self.draw)) if v is not None}

    def path(self, value: str) -> Path:
        """A path of the experiment file, resolved against the file's folder when relative."""
        path = Path(value)
        return path if path.is_absolute() or self.root is None else Path(self.root) / path

    def params_for_csv(self) -> dict[str, Any]:
        """Every sweepable parameter with its value as `runs.csv` holds it (formatted: `(64, 32)`
        is `"64x32"`), but the model parameters its builder does not take (`takes`), and the
        variant's name."""
        out: dict[str, Any] = {"variant": self.variant} if self.variant is not None else {}
        takes = self.takes if self.takes is not None else BUILDER_PARAMS.get(self.model.builder)
        for key, (section, field) in PARAMS.items():
            if key not in MODEL_PARAMS or takes is None or key in takes:
                out[key] = format_value(getattr(getattr(self, section), field))
        return out

    def params_for_builder(self) -> dict[str, Any]:
        """Every sweepable parameter with its raw value (lists stay tuples), whatever the builder
        takes: the keywords a builder is offered (`mlreg.models.builder_arguments`)."""
        return {key: getattr(getattr(self, s), f) for key, (s, f) in PARAMS.items()}


def accepts(param: str, value: Any) -> bool:
    """Whether `param` may take `value` (a search placing values of its own asks: a dropout rate
    must stay below 1)."""
    section, field = PARAMS[param]
    try:
        _SECTIONS[section].model_validate({field: value})
    except ValidationError:
        return False
    return True


def format_value(v: Any) -> Any:
    """How a parameter value is written in CSVs: `(64, 32)` -> `"64x32"`; anything else as it is."""
    if isinstance(v, tuple):
        return "x".join(str(x) for x in v)
    return v


def label(v: Any) -> str:
    """How a parameter value is shown in tables, legends and messages: `0.001`, `64x32`, `True`."""
    v = format_value(v)
    return f"{v:g}" if isinstance(v, float) else str(v)
