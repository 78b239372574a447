"""How runs are trained. An engine groups runs into *packs* and trains a pack, yielding one
`RunResult` per run as each run ends.

- `keras`: one `model.fit` per run (a pack is one run); any Keras model; the exact reference.
- `fused`: the runs of a pack share one compiled program (see `mlreg.engines.fused`); any
  model that does not train itself (its own `train_step`).
- `auto`: `fused` for every run it can take and trains faster that way (measured once per
  model, batch, data size, backend and machine; see `mlreg.engines.fused.sizing`), `keras`
  for the rest.

Importing this module imports neither Keras nor its backends; training does, on the backend
`mlreg.backend` chose.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from mlreg.backend import import_keras
from mlreg.spec import ENGINES, SpecError

if TYPE_CHECKING:
    from mlreg.data import Dataset
    from mlreg.records import RunResult
    from mlreg.spec import RunSpec

Engine = Literal["fused", "keras"]



@dataclass(frozen=True)
class Pack:
    """Runs that one engine trains together (the unit an executor moves).

    Attributes:
        engine: `fused` or `keras`.
        runs: the runs.
        until: pause the runs still training after this many epochs (a search's rung);
            `None` trains to the end.
        resume: the states of paused runs by run id (`RunResult.state`), to go on from.
        auto: a fused pack under engine `auto`: it trains with `keras` where one run alone
            measures faster.
    """

    engine: Engine
    runs: tuple[RunSpec, ...]
    until: int | None = None
    resume: Mapping[str, Any] | None = None
    auto: bool = False


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise SpecError(f"Invalid value for `engine`: expected one of {list(ENGINES)}. Received: engine={engine!r}")
    return engine


def plan(
    runs: Sequence[RunSpec], engine: str = "auto", *, max_pack: int | None = None,
    reasons: Mapping[str, str] | None = None, parallel: int = 1, until: int | None = None,
    resume: Mapping[str, Any] | None = None,
) -> tuple[list[Pack], str | None]:
    """Packs the runs for an engine.

    Args:
        runs: the runs to train, in plan order.
        engine: `auto`, `fused` or `keras`. Defaults to `"auto"`.
        max_pack: most runs in one fused pack. Defaults to `fused.MAX_PACK`, and for
            `parallel` workers few enough that each has a pack.
        reasons: run id -> why the fused engine cannot train it (a model that trains itself;
            the runner finds them). Defaults to `None`: every run can be fused.
        parallel: how many workers will train the packs. Defaults to `1`.
        until, resume: a search's rung and the paused runs' states (see `Pack`). Default to
            `None`.

    Returns:
        The packs, and a one-line note when `auto` trains some runs with `keras` (saying
        which and why), else `None`.

    Raises:
        SpecError: an unknown engine, or `fused` asked for runs it cannot fuse.
    """
    from mlreg.engines import fused

    check_engine(engine)
    resume = resume or {}

    def make(kind: Engine, pack: Sequence[RunSpec]) -> Pack:
        return Pack(kind, tuple(pack), until, {r.run_id: resume[r.run_id] for r in pack if r.run_id in resume},
                    auto=engine == "auto" and kind == "fused")

    if engine == "keras":
        return [make("keras", (r,)) for r in runs], None
    reasons = reasons or {}
    rest = [r for r in runs if r.run_id in reasons]
    if rest and engine == "fused":
        raise SpecError(f"Invalid value for `engine`: the fused engine cannot train {len(rest)} of these runs "
                        f"({reasons[rest[0].run_id]}); use engine = \"auto\" or \"keras\". Received: engine='fused'")
    fusable = [r for r in runs if r.run_id not in reasons]
    if max_pack is None:
        max_pack = max(1, min(fused.MAX_PACK, math.ceil(len(fusable) / parallel)))
    packs = [make("fused", p) for p in fused.pack(fusable, max_pack)]
    packs += [make("keras", (r,)) for r in rest]
    note = None
    if rest:
        why = sorted({reasons[r.run_id] for r in rest})
        note = f"engine auto: {len(rest)} of {len(runs)} runs train with keras ({'; '.join(why)})"
    return packs, note


def train(pack: Pack, data: Dataset) -> Iterator[RunResult]:
    """Trains a pack with its engine, yielding each run's record as it ends. A run that
    raises is a `failed` record; nothing here raises for a run's sake. No sweep is lost to an
    engine: the runs the fused engine fails on for a reason of its own are trained by the keras
    engine (said once, in the first record's `note`); only an error the keras engine raises too
    makes a run `failed`."""
    import_keras()
    from mlreg.engines import keras

    if pack.engine == "keras":
        yield from keras.train_pack(list(pack.runs), data, until=pack.until)
        return
    from mlreg.engines.fused import sizing, train_pack

    yield from train_pack(list(pack.runs), data, until=pack.until, resume=dict(pack.resume or {}),
                          fallback=lambda run: keras.execute(run, data, pack.until),
                          alone=(lambda: keras.timed(pack.runs[0], data, sizing.STEPS)) if pack.auto else None)
