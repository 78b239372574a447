"""Keras's `EarlyStopping` rule for K runs at once, vectorised (NumPy, no Keras)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class StopRule:
    """Keras's `EarlyStopping` rules for K runs at once (numpy, no Keras).

    Per run, at each epoch's end: `wait` is incremented first; an improvement is
    `current + min_delta < best` (mode `min`; `current - min_delta > best` for `max`), and the
    first epoch always improves; an improvement resets `wait` and makes the epoch's weights
    the best; otherwise the run stops when `wait >= patience` and `epoch > 0`. A run with early
    stopping off never stops.

    Args:
        patience: one value per run.
        min_delta: one value per run (its absolute value counts).
        enabled: one value per run.
        mode: `"min"` or `"max"`. Defaults to `"min"`.
    """

    def __init__(self, patience: Sequence[int], min_delta: Sequence[float], enabled: Sequence[bool],
                 mode: str = "min") -> None:
        self.patience = np.asarray(patience, dtype=np.int64)
        self.min_delta = np.abs(np.asarray(min_delta, dtype=np.float64))
        self.enabled = np.asarray(enabled, dtype=bool)
        self.sign = 1.0 if mode == "min" else -1.0
        k = len(self.patience)
        self.best = np.full(k, np.nan)
        self.seen = np.zeros(k, dtype=bool)
        self.best_epoch = np.zeros(k, dtype=np.int64)
        self.wait = np.zeros(k, dtype=np.int64)

    def update(self, epoch: int | Sequence[int], current: Sequence[float],
               which: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Takes epoch `epoch` (0-based; one for all, or one per run) of the runs `which`
        (indices); returns, for those runs, whether each improved (its weights become the best)
        and whether each stops now."""
        which = np.asarray(which, dtype=np.int64)
        epoch = np.broadcast_to(np.asarray(epoch, dtype=np.int64), which.shape)
        current = np.asarray(current, dtype=np.float64)
        s = self.sign
        self.wait[which] += 1
        with np.errstate(invalid="ignore"):  # Keras compares in float32, after the subtraction in float64
            shifted = (current + s * self.min_delta[which]).astype(np.float32)
            improved = ~self.seen[which] | (s * shifted < s * self.best[which].astype(np.float32))
        idx = which[improved]
        self.best[idx], self.best_epoch[idx] = current[improved], epoch[improved]
        self.wait[idx], self.seen[idx] = 0, True
        stop = ~improved & (self.wait[which] >= self.patience[which]) & (epoch > 0) & self.enabled[which]
        return improved, stop

