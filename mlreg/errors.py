"""The errors that say the user's input is bad: the floor every other module stands on (it
imports nothing of mlreg)."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input from the user: an experiment file, a data file, a results directory or an
    option that cannot be used as given. The CLI exits with code 2 on this class and only on
    it; every other exception is mlreg's own failure (exit 1)."""


class SpecError(InputError):
    """An experiment file (or a value in it) is invalid."""
