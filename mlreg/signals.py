"""Ctrl-C and SIGTERM: a request to stop at the next safe point, never an exception raised in
the middle of an import, a compilation or a write.

`install` (the first thing `mlreg` does) makes both signals set `STOP` instead of raising:
importing TensorFlow or JAX can swallow a `KeyboardInterrupt` raised inside them (in a garbage
collector callback) or crash on it. The sweep checks `STOP` at its safe points (`check`: before
and after the data, the checks and the imports; engines between batches or epochs) and ends
with `Interrupted`, which the CLI turns into exit code 128 + the signal. A second signal stops
at once. Nothing here imports anything of mlreg.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

STOP = threading.Event()
"""Set when the sweep should stop: engines check it between batches or epochs and raise
`KeyboardInterrupt` there, so that no run is cut at an arbitrary point."""

_RECEIVED: list[int] = []


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped the sweep at a safe point. Finished runs are kept.

    Attributes:
        signum: the signal (`signal.SIGINT` or `signal.SIGTERM`).
    """

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _handler(signum: int, frame: object) -> None:
    if STOP.is_set():  # the second signal: stop at once
        raise Interrupted(signum)
    _RECEIVED.append(signum)
    STOP.set()


def install() -> dict[int, object]:
    """From now on, Ctrl-C and SIGTERM set `STOP` (in the main thread; elsewhere nothing
    changes). Returns the handlers they had."""
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        return {}
    return {sig: signal.signal(sig, _handler) for sig in (signal.SIGINT, signal.SIGTERM)}


def received() -> int:
    """The first signal that asked to stop (SIGINT when none was recorded)."""
    return _RECEIVED[0] if _RECEIVED else signal.SIGINT


def check() -> None:
    """A safe point: raises `Interrupted` if a stop was asked."""
    if STOP.is_set():
        raise Interrupted(received())


@contextlib.contextmanager
def stopping() -> Iterator[None]:
    """A sweep's scope: the signals set `STOP` inside (a stop asked before, during start-up,
    counts); a `KeyboardInterrupt` an engine raises at a safe point becomes `Interrupted` with
    the signal that asked; the previous handlers and a clear `STOP` come back afterwards."""
    saved = install()
    try:
        check()
        yield
    except KeyboardInterrupt as e:
        if isinstance(e, Interrupted) or not _RECEIVED:
            raise
        raise Interrupted(_RECEIVED[0]) from None
    finally:
        for sig, old in saved.items():
            if old is not None and old is not _handler:
                signal.signal(sig, old)  # type: ignore[arg-type]
        STOP.clear()
        _RECEIVED.clear()
